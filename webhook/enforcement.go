package webhook

import (
	"fmt"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The backstop: a ValidatingAdmissionPolicy that the API server evaluates
// after all mutation (reinvocation included). It refuses a sandbox pod that
// does not carry the chain, whatever happened to the webhook: its
// registration deleted or set to failurePolicy Ignore, or a later webhook
// that dropped the /tmp mount. It checks the pod's spec, never guardchain's
// status annotation, which anyone can write.

// EnforcementOptions describe the policy and its binding; the chart renders
// the same objects and a test compares the two.
type EnforcementOptions struct {
	// Registration gives the name and the namespaces, as for the webhook.
	Registration RegistrationOptions
	// Repositories are the image repositories guardchain's init image may
	// come from (the chart's initImage.repository).
	Repositories []string
	// Actions are the binding's validationActions: Deny, or Warn and Audit.
	Actions []admissionregistrationv1.ValidationAction
}

// EnforcementPolicy builds the ValidatingAdmissionPolicy and its binding for cfg.
func EnforcementPolicy(cfg Config, o EnforcementOptions) (*admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
	reg := MutatingWebhookConfiguration(cfg, o.Registration).Webhooks[0]
	names := celList(cfg.Containers)
	if cfg.allows(OverrideContainers) {
		// The annotation adds targets to config's, as in Inject.
		names = fmt.Sprintf("(has(object.metadata.annotations) && '%s' in object.metadata.annotations ? "+
			"object.metadata.annotations['%s'].split(',').map(n, n.trim()).filter(n, n != '') : []) + %s", AnnotationContainers, AnnotationContainers, names)
	}
	repos := celList(o.Repositories)
	isRepo := func(img string) string {
		return fmt.Sprintf("%s.exists(r, %s.startsWith(r + ':') || %s.startsWith(r + '@'))", repos, img, img)
	}
	v := func(name, expr string) admissionregistrationv1.Variable {
		return admissionregistrationv1.Variable{Name: name, Expression: expr}
	}
	w := "variables.writers[0]"
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Registration.Name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{
				NamespaceSelector: reg.NamespaceSelector,
				ObjectSelector:    reg.ObjectSelector,
				MatchPolicy:       ptr.To(admissionregistrationv1.Equivalent),
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
						Scope: ptr.To(admissionregistrationv1.NamespacedScope)},
				}}},
			},
			// Only pods the webhook would inject: a sandbox, with a target
			// container (by config, or by annotation where config allows
			// it), not Windows.
			MatchConditions: []admissionregistrationv1.MatchCondition{
				{Name: "is-sandbox", Expression: SandboxCondition},
				{Name: "has-target-container", Expression: fmt.Sprintf("object.spec.containers.exists(c, c.name in (%[1]s)) || "+
					"(has(object.spec.initContainers) && object.spec.initContainers.exists(c, c.name in (%[1]s) && c.name != '%[2]s' && "+
					"has(c.restartPolicy) && c.restartPolicy == 'Always'))", names, InitContainerName)},
				// WindowsOnly, in CEL: those pods are left to run unguarded.
				{Name: "not-windows", Expression: "!(has(object.spec.os) && object.spec.os.name == 'windows') && " +
					"!(has(object.spec.nodeSelector) && 'kubernetes.io/os' in object.spec.nodeSelector && object.spec.nodeSelector['kubernetes.io/os'] != 'linux') && " +
					"!(has(object.spec.affinity) && has(object.spec.affinity.nodeAffinity) && has(object.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution) && " +
					"size(object.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms) > 0 && " +
					"object.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.all(t, has(t.matchExpressions) && " +
					"t.matchExpressions.exists(e, e.key == 'kubernetes.io/os' && ((e.operator == 'In' && !(has(e.values) && 'linux' in e.values)) || " +
					"(e.operator == 'NotIn' && has(e.values) && 'linux' in e.values) || e.operator in ['DoesNotExist', 'Gt', 'Lt']))))"},
			},
			Variables: []admissionregistrationv1.Variable{
				v("pod", "object.metadata.namespace + '/' + (object.metadata.name != '' ? object.metadata.name : object.metadata.generateName + '*')"),
				v("names", names),
				v("inits", "has(object.spec.initContainers) ? object.spec.initContainers : []"),
				v("targets", fmt.Sprintf("object.spec.containers.filter(c, c.name in variables.names) + "+
					"variables.inits.filter(c, c.name in variables.names && c.name != '%s' && has(c.restartPolicy) && c.restartPolicy == 'Always')", InitContainerName)),
				v("writers", fmt.Sprintf("variables.inits.filter(c, c.name == '%s')", InitContainerName)),
				v("bins", fmt.Sprintf("variables.inits.filter(c, c.name == '%s')", BinContainerName)),
				// guardchain-init first, or right after guardchain-bin: before
				// every other init container, native sidecar and container.
				v("first", fmt.Sprintf("size(variables.inits) > 0 && (variables.inits[0].name == '%[1]s' || "+
					"(variables.inits[0].name == '%[2]s' && size(variables.inits) > 1 && variables.inits[1].name == '%[1]s'))", InitContainerName, BinContainerName)),
				// Mount paths are compared as the kernel resolves them:
				// "/tmp", "/tmp/" and "//tmp" are one place.
				v("writerTmp", fmt.Sprintf("variables.first && has(%[1]s.volumeMounts) ? %[1]s.volumeMounts.filter(m, m.mountPath.matches('%[2]s')) : []", w, tmpPathRE)),
				// Each target mounts /tmp once, from the writer's volume and
				// subPath, and nothing over a chain file.
				v("unmounted", fmt.Sprintf("variables.targets.filter(t, !(has(t.volumeMounts) && size(t.volumeMounts.filter(m, m.mountPath.matches('%[1]s'))) == 1 && "+
					"t.volumeMounts.exists(m, m.mountPath.matches('%[1]s') && variables.writerTmp.exists(w, w.name == m.name && "+
					"(has(w.subPath) ? w.subPath : '') == (has(m.subPath) ? m.subPath : '') && "+
					"(has(w.subPathExpr) ? w.subPathExpr : '') == (has(m.subPathExpr) ? m.subPathExpr : ''))) && "+
					"!t.volumeMounts.exists(m, m.mountPath.matches('%[2]s')))).map(t, t.name)", tmpPathRE, chainFileRE)),
				v("emptyDir", "variables.writerTmp.all(w, has(object.spec.volumes) && object.spec.volumes.exists(v, v.name == w.name && has(v.emptyDir)))"),
				// The chain's writer is initguards from the configured
				// repository: run from that image (embedded), or copied from it
				// by guardchain-bin into an emptyDir and run in the target's
				// image (image and auto sources).
				// initguards emit, into /tmp, as a run-once init container;
				// and nothing mounted over the copied binary.
				v("emits", fmt.Sprintf("variables.first && has(%[1]s.args) && %[1]s.args == ['emit'] && !has(%[1]s.restartPolicy) && "+
					"(!has(%[1]s.env) || %[1]s.env.all(e, e.name != 'GUARDCHAIN_DIR' || (has(e.value) && e.value == '%[2]s'))) && "+
					"(!has(%[1]s.volumeMounts) || %[1]s.volumeMounts.all(m, !m.mountPath.matches('^/+guardchain(/|$)') || (m.mountPath == '%[3]s' && m.name == '%[4]s')))",
					w, TmpPath, BinPath, BinVolumeName)),
				v("fromRepo", fmt.Sprintf("variables.emits && ((%[1]s && (!has(%[2]s.command) || size(%[2]s.command) == 0)) || "+
					"(has(%[2]s.command) && %[2]s.command == ['%[3]s/initguards'] && size(variables.bins) == 1 && variables.inits[0].name == '%[4]s' && "+
					"%[5]s && has(variables.bins[0].args) && size(variables.bins[0].args) > 0 && variables.bins[0].args[0] == 'copy-self' && "+
					"(!has(variables.bins[0].command) || size(variables.bins[0].command) == 0) && "+
					"has(%[2]s.volumeMounts) && %[2]s.volumeMounts.exists(m, m.mountPath == '%[3]s' && m.name == '%[6]s') && "+
					"has(variables.bins[0].volumeMounts) && variables.bins[0].volumeMounts.exists(m, m.mountPath == '%[3]s' && m.name == '%[6]s') && "+
					"has(object.spec.volumes) && object.spec.volumes.exists(v, v.name == '%[6]s' && has(v.emptyDir))))",
					isRepo(w+".image"), w, BinPath, BinContainerName, isRepo("variables.bins[0].image"), BinVolumeName)),
			},
			Validations: []admissionregistrationv1.Validation{
				{Expression: "variables.first", Reason: ptr.To(metav1.StatusReasonForbidden),
					Message: "guardchain: the pod has no guardchain-init first among its init containers",
					MessageExpression: fmt.Sprintf("'guardchain: pod ' + variables.pod + ' has no %s first among its init containers: the guard chain would not be written "+
						"before its containers start (the mutating webhook did not run, or a later one moved it)'", InitContainerName)},
				{Expression: "variables.first && size(variables.writerTmp) == 1", Reason: ptr.To(metav1.StatusReasonForbidden),
					Message:           "guardchain: guardchain-init does not mount /tmp",
					MessageExpression: fmt.Sprintf("'guardchain: pod ' + variables.pod + ': %s does not mount %s once'", InitContainerName, TmpPath)},
				{Expression: "size(variables.unmounted) == 0", Reason: ptr.To(metav1.StatusReasonForbidden),
					Message: "guardchain: a target container does not mount at /tmp the volume guardchain-init writes",
					MessageExpression: fmt.Sprintf("'guardchain: pod ' + variables.pod + ': container ' + variables.unmounted.join(', ') + "+
						"' does not mount at %s the volume (and subPath) %s writes the guard chain into'", TmpPath, InitContainerName)},
				{Expression: "variables.emptyDir", Reason: ptr.To(metav1.StatusReasonForbidden),
					Message:           "guardchain: the chain's volume is not an emptyDir",
					MessageExpression: "'guardchain: pod ' + variables.pod + ': the volume at /tmp is not an emptyDir'"},
				{Expression: "variables.fromRepo", Reason: ptr.To(metav1.StatusReasonForbidden),
					Message: "guardchain: guardchain-init does not run initguards emit from the configured image",
					MessageExpression: fmt.Sprintf("'guardchain: pod ' + variables.pod + ': %s does not run initguards emit from %s'",
						InitContainerName, strings.ReplaceAll(strings.Join(o.Repositories, " or "), "'", ""))},
			},
		},
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
	return policy, binding
}

// RE2 patterns for mount paths the kernel treats as /tmp, and as a chain
// file in it.
const (
	tmpPathRE   = `^/+tmp/*$`
	chainFileRE = `^/+tmp/+nemoclaw-`
)

// celList is a CEL list literal of validated names (DNS labels, image
// repositories): none holds a quote.
func celList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = "'" + strings.ReplaceAll(s, "'", "") + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}
