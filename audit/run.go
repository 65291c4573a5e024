package audit

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/guardchain/guardchain/guards"
	"github.com/guardchain/guardchain/internal/version"
	"github.com/guardchain/guardchain/webhook"
)

// Row is one audited pod, as printed.
type Row struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Owner     string `json:"owner,omitempty"`
	State     State  `json:"state"`
	Source    string `json:"source,omitempty"`
	Version   string `json:"version,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// Report is the whole audit, as -o json|yaml prints it.
type Report struct {
	Items   []Row         `json:"items"`
	Summary map[State]int `json:"summary"`
}

// Failing reports whether any pod is unguarded or failed: the audit's exit 1.
func (r Report) Failing() bool { return r.Summary[Unguarded]+r.Summary[Failed] > 0 }

// Audit lists the pods of namespace ("" for all) that ref targets and classifies each.
func Audit(ctx context.Context, cs kubernetes.Interface, namespace string, ref Reference) (Report, error) {
	rep := Report{Items: []Row{}, Summary: map[State]int{Guarded: 0, Stale: 0, Unguarded: 0, Failed: 0}}
	opts := metav1.ListOptions{Limit: 500}
	for {
		list, err := cs.CoreV1().Pods(namespace).List(ctx, opts)
		if err != nil {
			return rep, fmt.Errorf("listing pods: %w", err)
		}
		for i := range list.Items {
			p := &list.Items[i]
			// guardchain never acts in kube-system; its pods are no sandboxes.
			if !ref.Targeted(p) || p.DeletionTimestamp != nil || p.Namespace == metav1.NamespaceSystem {
				continue
			}
			state, why := Classify(p, ref)
			rep.Summary[state]++
			rep.Items = append(rep.Items, Row{Namespace: p.Namespace, Name: p.Name, Owner: owner(p), State: state,
				Source: p.Annotations[webhook.AnnotationChainSource], Version: p.Annotations[webhook.AnnotationVersion], Reason: why})
		}
		if opts.Continue = list.Continue; opts.Continue == "" {
			return rep, nil
		}
	}
}

func owner(p *corev1.Pod) string {
	for _, o := range p.OwnerReferences {
		if o.Controller != nil && *o.Controller {
			return o.Kind + "/" + o.Name
		}
	}
	if len(p.OwnerReferences) > 0 {
		return p.OwnerReferences[0].Kind + "/" + p.OwnerReferences[0].Name
	}
	return ""
}

const usage = `usage: audit [-n NAMESPACE | -A] [-o table|json|yaml] [--kubeconfig FILE] [--context NAME]
             [--containers agent,...] [--annotation-targets=true] [--release VERSION] [--chain SHA256]
Lists the sandbox pods (a container the webhook targets) and says whether each
carries the guard chain: guarded, stale (another release's: restart to
update), unguarded (created before guardchain or while it was bypassed) or
failed (its init container did not complete). Exit 1 when any pod is
unguarded or failed, 2 when the audit could not run.
Needs: list pods in the namespaces audited (cluster-wide with -A).`

// Main is the audit command (guardchain-webhook audit, kubectl guardchain
// audit): it returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o struct {
		kubeconfig, context, namespace, output, containers, release, chain string
		all, annotationTargets                                             bool
	}
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&o.context, "context", "", "kubeconfig context")
	for _, n := range []string{"n", "namespace"} {
		fs.StringVar(&o.namespace, n, "", "namespace (default: the context's)")
	}
	for _, n := range []string{"A", "all-namespaces"} {
		fs.BoolVar(&o.all, n, false, "every namespace")
	}
	for _, n := range []string{"o", "output"} {
		fs.StringVar(&o.output, n, "table", "table, json or yaml")
	}
	fs.StringVar(&o.containers, "containers", strings.Join(webhook.Default().Containers, ","), "target container names (config containers)")
	fs.BoolVar(&o.annotationTargets, "annotation-targets", true, "pods may name targets in "+webhook.AnnotationContainers)
	fs.StringVar(&o.release, "release", version.Version, "the current guardchain release")
	fs.StringVar(&o.chain, "chain", guards.DefaultSHA256(), "the current embedded chain's sha256")
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "audit: "+format+"\n", a...)
		return code
	}
	if err := fs.Parse(kubectlStyle(args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, usage)
			return 0
		}
		return fail(2, "%v", err)
	}
	if fs.NArg() > 0 {
		return fail(2, "unexpected arguments %q", fs.Args())
	}
	if o.output != "table" && o.output != "json" && o.output != "yaml" {
		return fail(2, "-o %q: want table, json or yaml", o.output)
	}
	if o.all && o.namespace != "" {
		return fail(2, "-n and -A exclude each other")
	}
	ref := Reference{AnnotationTargets: o.annotationTargets, Version: o.release, Chain: o.chain}
	for _, c := range strings.Split(o.containers, ",") {
		if c = strings.TrimSpace(c); c != "" {
			ref.Containers = append(ref.Containers, c)
		}
	}
	if len(ref.Containers) == 0 {
		return fail(2, "--containers names no container")
	}

	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: o.context, Context: clientcmdapi.Context{Namespace: o.namespace}})
	rc, err := cc.ClientConfig()
	if err != nil {
		return fail(2, "reading kubeconfig: %s", oneLine(err))
	}
	ns := ""
	if !o.all {
		if ns, _, err = cc.Namespace(); err != nil {
			return fail(2, "namespace from kubeconfig: %s", oneLine(err))
		}
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fail(2, "client: %s", oneLine(err))
	}
	rep, err := Audit(ctx, cs, ns, ref)
	if err != nil {
		return fail(2, "%s", oneLine(err))
	}
	if err := print(stdout, o.output, rep, o.all); err != nil {
		return fail(2, "writing: %v", err)
	}
	fmt.Fprintf(stderr, "%d sandbox pods: %d guarded, %d stale, %d unguarded, %d failed\n", len(rep.Items),
		rep.Summary[Guarded], rep.Summary[Stale], rep.Summary[Unguarded], rep.Summary[Failed])
	if rep.Failing() {
		return 1
	}
	return 0
}

func print(w io.Writer, output string, rep Report, allNamespaces bool) error {
	switch output {
	case "json":
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case "yaml":
		b, err := yaml.Marshal(rep)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	if len(rep.Items) == 0 {
		return nil
	}
	header := "NAME\tOWNER\tSTATE\tSOURCE\tVERSION\tREASON"
	if allNamespaces {
		header = "NAMESPACE\t" + header
	}
	fmt.Fprintln(tw, header)
	for _, r := range rep.Items {
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", r.Name, dash(r.Owner), r.State, dash(r.Source), dash(r.Version), dash(r.Reason))
		if allNamespaces {
			line = r.Namespace + "\t" + line
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

// kubectlStyle splits kubectl's joined short flags (-oyaml, -nNS) into the
// flag and its value.
func kubectlStyle(args []string) []string {
	var out []string
	for _, a := range args {
		if len(a) > 2 && (strings.HasPrefix(a, "-o") || strings.HasPrefix(a, "-n")) && a[2] != '=' {
			out = append(out, a[:2], a[2:])
			continue
		}
		out = append(out, a)
	}
	return out
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
