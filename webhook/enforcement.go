package webhook

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/guardchain/guardchain/initguards"
)

// The backstop: a ValidatingAdmissionPolicy that the API server evaluates
// after all mutation (reinvocation included), on every CREATE of a sandbox
// pod and every UPDATE (and ephemeral container) of one guardchain injected.
// It refuses a pod that does not carry the chain exactly as the webhook
// renders it, whatever happened to the webhook: its registration deleted or
// set to failurePolicy Ignore, a later webhook that dropped the /tmp mount,
// or a pod written by hand to look injected. It reads the pod's spec, never
// guardchain's annotations, which anyone can write. Mount paths are compared
// as written, so it refuses any that is not already clean and absolute (the
// kubelet would clean it: "tmp" is /tmp).
//
// The chart's templates/enforcement.yaml is generated from policySpec with
// chartParams (go test ./webhook -run EnforcementTemplate -update), and a
// control-plane test renders it for several values files and compares it with
// EnforcementPolicy: one set of expressions, two ways to fill in the config.

// EnforcementOptions describe the policy and its binding.
type EnforcementOptions struct {
	// Registration gives the name and the namespaces, as for the webhook.
	Registration RegistrationOptions
	// Repositories are the image repositories guardchain's init image may
	// come from (the chart's initImage.repository).
	Repositories []string
	// Actions are the binding's validationActions: Deny, or Warn and Audit.
	Actions []admissionregistrationv1.ValidationAction
}

// celParams are the config values the policy's expressions read, each as a
// CEL expression: literals for Go, template actions for the chart.
type celParams struct {
	// names is the list of target container names (config's, plus the
	// pod's guardchain.dev/containers annotation where allowed).
	names string
	// repos is the list of repositories the init image may come from, and
	// reposText the same for messages.
	repos, reposText string
	// source, proxyHost, proxyPort and require are the settings as the pod
	// gets them (config's, or the pod's annotation where allowed);
	// preloadsDir, cacheRedirects and gitSSLCAInfo are config's.
	source, proxyHost, proxyPort, require, preloadsDir, cacheRedirects, gitSSLCAInfo string
	// ownership is a fixed owner the config sets and pods may not change,
	// or '' where the pod says it (auto: its OPENSHELL_SANDBOX_UID, which
	// its author sets anyway).
	ownership string
	// configNames are config's target names (not the annotation's): an
	// image source runs the writer in one of their images.
	configNames string
	// writer is the writer mode as the pod gets it (config's, or the pod's
	// annotation where allowed).
	writer string
	// selectorKeys are the label keys the objectSelector reads.
	selectorKeys string
}

// goParams fills celParams from a config.
func goParams(cfg Config, repos []string) celParams {
	o := cfg.guardOptions()
	names := celList(cfg.Containers)
	if cfg.allows(OverrideContainers) {
		// The annotation adds targets to config's, as in Inject.
		names = fmt.Sprintf("(has(object.metadata.annotations) && '%[1]s' in object.metadata.annotations ? "+
			"object.metadata.annotations['%[1]s'].split(',').map(n, n.trim()).filter(n, n != '') : []) + %[2]s", AnnotationContainers, names)
	}
	override := func(ov Override, configured, annotation string) string {
		if !cfg.allows(ov) {
			return configured
		}
		return fmt.Sprintf("(has(object.metadata.annotations) && '%[1]s' in object.metadata.annotations ? %[2]s : %[3]s)",
			annotationPrefix+string(ov), annotation, configured)
	}
	ann := func(ov Override) string {
		return "object.metadata.annotations['" + annotationPrefix + string(ov) + "']"
	}
	return celParams{
		names:     names,
		repos:     celList(repos),
		reposText: strings.ReplaceAll(strings.Join(repos, " or "), "'", ""),
		source:    override(OverrideSource, celString(string(cfg.Source)), ann(OverrideSource)),
		proxyHost: override(OverrideProxyHost, celString(o.ProxyHost), ann(OverrideProxyHost)),
		proxyPort: override(OverrideProxyPort, celString(strconv.Itoa(o.ProxyPort)), ann(OverrideProxyPort)),
		// As Inject reads it: a comma-separated list, or none.
		require: override(OverrideRequire, celString(requireList(o.Required)),
			fmt.Sprintf("(%[1]s == 'none' || size(%[1]s.split(',').map(n, n.trim()).filter(n, n != '')) == 0 ? 'none' : %[1]s.split(',').map(n, n.trim()).filter(n, n != '').join(','))",
				ann(OverrideRequire))),
		preloadsDir:    celString(cfg.PreloadsDir),
		cacheRedirects: celString(redirectList(o.CacheRedirects)),
		gitSSLCAInfo:   celString(o.GitSSLCAInfo),
		ownership:      fixedOwnership(cfg),
		configNames:    celList(cfg.Containers),
		writer:         override(OverrideWriter, celString(string(cfg.Writer)), ann(OverrideWriter)),
	}
}

// fixedOwnership is the CEL literal of config's ownership where pods get it
// as it is, else ”.
func fixedOwnership(cfg Config) string {
	if cfg.Ownership == OwnershipAuto || cfg.allows(OverrideOwnership) {
		return "''"
	}
	return celString(cfg.Ownership)
}

// EnforcementPolicy builds the ValidatingAdmissionPolicy and its binding
// for cfg (a list, with one binding).
func EnforcementPolicy(cfg Config, o EnforcementOptions) (*admissionregistrationv1.ValidatingAdmissionPolicy, []*admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
	reg := MutatingWebhookConfiguration(cfg, o.Registration).Webhooks[0]
	p := goParams(cfg, o.Repositories)
	p.selectorKeys = celList(selectorKeys(reg.ObjectSelector))
	spec := policySpec(p)
	spec.MatchConstraints.NamespaceSelector = reg.NamespaceSelector
	spec.MatchConstraints.ObjectSelector = reg.ObjectSelector
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Registration.Name},
		Spec:       spec,
	}
	actions := slices.Clone(o.Actions)
	if len(actions) == 0 {
		actions = []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicyBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Registration.Name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        o.Registration.Name,
			ValidationActions: actions,
		},
	}
	return policy, []*admissionregistrationv1.ValidatingAdmissionPolicyBinding{binding}
}

// selectorKeys are the label keys an objectSelector reads: its matchLabels'
// (sorted, as helm ranges over a map) and then its matchExpressions'.
func selectorKeys(sel *metav1.LabelSelector) []string {
	if sel == nil {
		return nil
	}
	keys := slices.Sorted(maps.Keys(sel.MatchLabels))
	for _, e := range sel.MatchExpressions {
		keys = append(keys, e.Key)
	}
	return keys
}

// The variables guardchain-init is given (initguards.EnvPrefix names no
// other one may be set; the expressions spell it 'GUARDCHAIN_').
var writerEnvNames = initguards.EnvNames()

// celList is a CEL list literal of validated names (DNS labels, image
// repositories): none holds a quote.
func celList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = celString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// celString is a CEL string literal of a validated value (no quote, no
// backslash: host names, ports, paths, guard ids, variable names).
func celString(s string) string {
	return "'" + strings.NewReplacer("'", "", `\`, "").Replace(s) + "'"
}
