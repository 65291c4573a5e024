package audit

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
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
             [--policy NAME | --config FILE [--init-repository REPO ...]]
             [--containers agent,...] [--annotation-targets] [--release VERSION] [--chain SHA256]
Lists the sandbox pods and says whether each carries the guard chain, judged
by the backstop's own expressions: guarded, stale (another release's: restart
to update), unguarded (what the backstop would refuse: created before
guardchain or while it was bypassed, or written to look guarded) or failed
(its init container did not complete). The expressions are the cluster's
ValidatingAdmissionPolicy --policy (default guardchain, the chart's name for
release guardchain), or, with --config (the webhook's config file) or where
the cluster has none, the ones this build makes for that config.
Exit 1 when any pod is unguarded or failed, 2 when the audit could not run.
Needs: list pods in the namespaces audited (cluster-wide with -A), get
validatingadmissionpolicies (else --config).`

// Main is the audit command (guardchain-webhook audit, kubectl guardchain
// audit): it returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o struct {
		kubeconfig, context, namespace, output, containers, release, chain, policy, config string
		all, annotationTargets                                                             bool
		repos                                                                              repoList
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
	fs.StringVar(&o.policy, "policy", "guardchain", "the backstop's ValidatingAdmissionPolicy in the cluster")
	fs.StringVar(&o.config, "config", "", "the webhook's config file: judge by the policy this build makes for it, not the cluster's")
	fs.Var(&o.repos, "init-repository", "with --config or no policy in the cluster: a repository the init image may come from (repeatable; default: config initImage's)")
	fs.StringVar(&o.containers, "containers", "", "with --config or no policy in the cluster: target container names (default: config containers)")
	fs.BoolVar(&o.annotationTargets, "annotation-targets", false, "with --config or no policy in the cluster: pods may name targets in "+webhook.AnnotationContainers+" (default: as config allows)")
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
	spec, from, err := policyFor(ctx, cs, o.policy, o.config, o.repos, o.containers, o.annotationTargets, fs)
	if err != nil {
		return fail(2, "%s", oneLine(err))
	}
	if from != "" {
		fmt.Fprintf(stderr, "audit: %s\n", from)
	}
	judge, err := NewJudge(spec)
	if err != nil {
		return fail(2, "the backstop's expressions: %s", oneLine(err))
	}
	ref := Reference{Judge: judge, Version: o.release, Chain: o.chain}
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

// repoList is a repeatable flag.
type repoList []string

func (r *repoList) String() string     { return strings.Join(*r, ",") }
func (r *repoList) Set(s string) error { *r = append(*r, s); return nil }

// policyFor is the policy the audit judges by: the cluster's, or, with a
// config file or where the cluster has none (enforcement off, or no right to
// read it), the one this build makes for that config (from says so).
func policyFor(ctx context.Context, cs kubernetes.Interface, name, configFile string, repos []string, containers string, annotationTargets bool,
	fs *flag.FlagSet) (admissionregistrationv1.ValidatingAdmissionPolicySpec, string, error) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	from := ""
	if configFile == "" && !given["init-repository"] && !given["containers"] {
		pol, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			return pol.Spec, "", nil
		case given["policy"]:
			return admissionregistrationv1.ValidatingAdmissionPolicySpec{}, "", fmt.Errorf("reading the backstop policy %s: %w", name, err)
		}
		from = fmt.Sprintf("no backstop policy %s to read (%s): judging by this build's policy for the default config", name, oneLine(err))
	}
	cfg := webhook.Default()
	if configFile != "" {
		var err error
		if cfg, err = webhook.LoadConfig(configFile); err != nil {
			return admissionregistrationv1.ValidatingAdmissionPolicySpec{}, "", err
		}
	}
	if containers != "" {
		cfg.Containers = nil
		for _, c := range strings.Split(containers, ",") {
			if c = strings.TrimSpace(c); c != "" {
				cfg.Containers = append(cfg.Containers, c)
			}
		}
		if len(cfg.Containers) == 0 {
			return admissionregistrationv1.ValidatingAdmissionPolicySpec{}, "", errors.New("--containers names no container")
		}
	}
	allows := slices.Contains(cfg.AllowedOverrides, webhook.OverrideContainers)
	if !given["annotation-targets"] {
		// config's
	} else if annotationTargets && !allows {
		cfg.AllowedOverrides = append(cfg.AllowedOverrides, webhook.OverrideContainers)
	} else if !annotationTargets && allows {
		cfg.AllowedOverrides = slices.DeleteFunc(slices.Clone(cfg.AllowedOverrides), func(o webhook.Override) bool { return o == webhook.OverrideContainers })
	}
	if len(repos) == 0 {
		repos = []string{imageRepository(cfg.InitImage)}
	}
	pol, _ := webhook.EnforcementPolicy(cfg, webhook.EnforcementOptions{Registration: webhook.RegistrationOptions{Name: "audit"}, Repositories: repos})
	return pol.Spec, from, nil
}

// imageRepository is an image reference without its tag or digest.
func imageRepository(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}
