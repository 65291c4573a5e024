package webhook

import (
	"fmt"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// RegistrationOptions describe the MutatingWebhookConfiguration that routes
// sandbox pods to guardchain. The Helm chart renders the same object; a test
// compares the two.
type RegistrationOptions struct {
	// Name of the configuration and (with ".guardchain.dev") of its webhook.
	Name string
	// ClientConfig reaches the webhook (the chart's Service; a URL in tests).
	ClientConfig admissionregistrationv1.WebhookClientConfig
	// Namespaces narrow the selection to these namespaces; empty: every
	// namespace but kube-system and ReleaseNamespace, wherever OpenShell puts
	// its sandboxes (one per workspace in managed mode).
	Namespaces []string
	// ReleaseNamespace is where guardchain runs; never selected, nor is
	// kube-system, so guardchain can never block its own recovery.
	ReleaseNamespace string
	// FailurePolicy defaults to Fail: an unguarded sandbox is worse than none.
	FailurePolicy  admissionregistrationv1.FailurePolicyType
	TimeoutSeconds int32
	// ObjectSelector narrows pods further (optional).
	ObjectSelector *metav1.LabelSelector
}

// MutatingWebhookConfiguration builds the registration for cfg.
func MutatingWebhookConfiguration(cfg Config, o RegistrationOptions) *admissionregistrationv1.MutatingWebhookConfiguration {
	if o.FailurePolicy == "" {
		o.FailurePolicy = admissionregistrationv1.Fail
	}
	if o.TimeoutSeconds == 0 {
		o.TimeoutSeconds = 10
	}
	nsSel := &metav1.LabelSelector{}
	if len(o.Namespaces) > 0 {
		nsSel.MatchExpressions = append(nsSel.MatchExpressions, metav1.LabelSelectorRequirement{
			Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: o.Namespaces})
	}
	nsSel.MatchExpressions = append(nsSel.MatchExpressions, metav1.LabelSelectorRequirement{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: neverSelected(o.ReleaseNamespace)})
	if cfg.NamespaceOptOutLabel != "" {
		nsSel.MatchExpressions = append(nsSel.MatchExpressions, metav1.LabelSelectorRequirement{
			Key: cfg.NamespaceOptOutLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"disabled"}})
	}
	objSel := o.ObjectSelector
	if objSel == nil {
		objSel = &metav1.LabelSelector{}
	}
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    o.Name + ".guardchain.dev",
			ClientConfig:            o.ClientConfig,
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			FailurePolicy:           ptr.To(o.FailurePolicy),
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
			TimeoutSeconds:          ptr.To(o.TimeoutSeconds),
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
			NamespaceSelector:       nsSel,
			ObjectSelector:          objSel,
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
					Scope: ptr.To(admissionregistrationv1.NamespacedScope),
				},
			}},
			// Only sandboxes reach the webhook: an outage of it (failurePolicy
			// Fail) refuses sandbox pods and no other pod of the cluster.
			MatchConditions: []admissionregistrationv1.MatchCondition{
				{Name: "is-sandbox", Expression: SandboxCondition},
				{Name: "has-target-container", Expression: TargetCondition(cfg.Containers)},
			},
		}},
	}
}

func neverSelected(release string) []string {
	out := []string{"kube-system"}
	if release != "" && release != "kube-system" {
		out = append(out, release)
	}
	return out
}

// What OpenShell puts on every sandbox pod: its driver annotates the pod
// template with the sandbox's id, and the agent-sandbox controller labels
// every pod it makes (warm pool pods too, made before any OpenShell
// annotation could exist) with the Sandbox's name hash.
const (
	SandboxIDAnnotation  = "openshell.io/sandbox-id"
	SandboxNameHashLabel = "agents.x-k8s.io/sandbox-name-hash"
)

// SandboxCondition is the CEL match condition that picks sandbox pods by
// those marks, in any namespace the namespace selector lets through.
const SandboxCondition = "(has(object.metadata.annotations) && '" + SandboxIDAnnotation + "' in object.metadata.annotations) || " +
	"(has(object.metadata.labels) && '" + SandboxNameHashLabel + "' in object.metadata.labels)"

// IsSandbox is SandboxCondition in Go, for the audit and offline checks.
func IsSandbox(meta *metav1.ObjectMeta) bool {
	_, a := meta.Annotations[SandboxIDAnnotation]
	_, l := meta.Labels[SandboxNameHashLabel]
	return a || l
}

// TargetCondition is the CEL match condition: the pod has a container (or
// native sidecar) named in config, or names its targets by annotation. The
// API server evaluates it, so other pods never reach the webhook.
func TargetCondition(containers []string) string {
	quoted := make([]string, len(containers))
	for i, c := range containers {
		quoted[i] = "'" + c + "'" // validated DNS labels: no quoting needed beyond this
	}
	names := "[" + strings.Join(quoted, ", ") + "]"
	return fmt.Sprintf("object.spec.containers.exists(c, c.name in %s) || "+
		"(has(object.spec.initContainers) && object.spec.initContainers.exists(c, c.name in %s)) || "+
		"(has(object.metadata.annotations) && '%s' in object.metadata.annotations)", names, names, AnnotationContainers)
}
