package webhook

import (
	"fmt"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/guardchain/guardchain/initguards"
)

// The backstop's expressions: match conditions, variables and validations,
// for config values given as CEL (celParams).

// policySpec is the policy for p, without the namespace and object
// selectors (the registration's).
// runAsUser is the user container c runs as: its own runAsUser, else the
// pod's (variables.podUser, -1 where neither says).
func runAsUser(c string) string {
	return fmt.Sprintf("(has(%[1]s.securityContext) && has(%[1]s.securityContext.runAsUser) ? %[1]s.securityContext.runAsUser : variables.podUser)", c)
}

func policySpec(p celParams) admissionregistrationv1.ValidatingAdmissionPolicySpec {
	v := func(name, expr string) admissionregistrationv1.Variable {
		return admissionregistrationv1.Variable{Name: name, Expression: expr}
	}
	isSandbox := func(o string) string {
		return strings.NewReplacer("object.", o+".").Replace(SandboxCondition)
	}
	// clean is true for a mount path as the kubelet would leave it.
	clean := func(m string) string {
		return fmt.Sprintf("(%[1]s.startsWith('/') && !%[1]s.contains('//') && (%[1]s == '/' || !%[1]s.endsWith('/')) && "+
			"!%[1]s.contains('/./') && !%[1]s.endsWith('/.') && !%[1]s.contains('/../') && !%[1]s.endsWith('/..'))", m)
	}
	isRepo := func(img string) string {
		return fmt.Sprintf("%s.exists(r, %s.startsWith(r + ':') || %s.startsWith(r + '@'))", p.repos, img, img)
	}
	// env is a writer variable set once, literally, to want.
	env := func(name, want string) string {
		return fmt.Sprintf("(size(variables.writerEnv.filter(e, e.name == '%[1]s')) == 1 && "+
			"variables.writerEnv.exists(e, e.name == '%[1]s' && !has(e.valueFrom) && (has(e.value) ? e.value : '') == %[2]s))", name, want)
	}
	// once is a writer variable set once, literally, to any value.
	once := func(name string) string {
		return fmt.Sprintf("(size(variables.writerEnv.filter(e, e.name == '%[1]s')) == 1 && "+
			"variables.writerEnv.exists(e, e.name == '%[1]s' && !has(e.valueFrom)))", name)
	}
	w, b := "variables.writers[0]", "variables.bins[0]"
	own := fmt.Sprintf("c.name == '%s' || c.name == '%s'", InitContainerName, BinContainerName)
	// images are a pod's guardchain and target containers' images, which a
	// pod UPDATE may change (and init containers rerun from when the pod
	// sandbox is recreated).
	images := func(o string) string {
		return fmt.Sprintf("(has(%[1]s.spec.initContainers) ? %[1]s.spec.initContainers : []).filter(c, %[2]s || c.name in variables.names).map(c, c.name + '=' + c.image) + "+
			"%[1]s.spec.containers.filter(c, c.name in variables.names).map(c, c.name + '=' + c.image)", o, own)
	}
	// requests are the values of the annotations a pod may ask for its
	// settings with: the judgment of a running pod (the audit) reads them
	// as they are now, so an update may not change them.
	// values lists, for each of keys, whether o's metadata.<field> (labels
	// or annotations) has it and with what value.
	values := func(keys, field, o string) string {
		return fmt.Sprintf("%[1]s.map(k, has(%[2]s.metadata.%[3]s) && k in %[2]s.metadata.%[3]s ? 'set ' + %[2]s.metadata.%[3]s[k] : 'unset')", keys, o, field)
	}
	overrideAnnotations := make([]string, len(allOverrides))
	for i, ov := range allOverrides {
		overrideAnnotations[i] = annotationPrefix + string(ov)
	}
	requests := func(o string) string { return values(celList(overrideAnnotations), "annotations", o) }
	// selected are the labels the objectSelector reads: an update may not
	// change them on a pod guardchain injected, or two updates would take
	// it out of the policy (the API server matches an update when the old
	// or the new object has them).
	selected := func(o string) string { return values(p.selectorKeys, "labels", o) }
	// canon is a path with the directory aliases every common base image
	// ships as symlinks (/var/run -> /run, merged /usr) resolved, as runc
	// resolves them when it mounts.
	canon := func(x string) string {
		out := x
		for i := len(pathAliases) - 1; i >= 0; i-- {
			a := pathAliases[i]
			out = fmt.Sprintf("(%[1]s == '%[2]s' || %[1]s.startsWith('%[2]s/') ? '%[3]s' + %[1]s.substring(%[4]d) : %[5]s)", x, a[0], a[1], len(a[0]), out)
		}
		return out
	}
	forbidden := ptr.To(metav1.StatusReasonForbidden)
	const writesChain = " is not a target but mounts the volume that holds the guard chain writable (or guardchain-bin): it could rewrite the chain"
	// listed refuses a pod whose variable name lists any container (of
	// kind, "container" or "ephemeral container"), naming them before detail;
	// onCreate only on create.
	listed := func(onCreate bool, kind, name, message, detail string) admissionregistrationv1.Validation {
		expr := "size(variables." + name + ") == 0"
		if onCreate {
			expr = "!variables.creating || (" + expr + ")"
		}
		return admissionregistrationv1.Validation{Expression: expr, Reason: forbidden, Message: message,
			MessageExpression: "'guardchain: pod ' + variables.pod + ': " + kind + " ' + variables." + name + ".join(', ') + '" + detail + "'"}
	}
	return admissionregistrationv1.ValidatingAdmissionPolicySpec{
		FailurePolicy: ptr.To(admissionregistrationv1.Fail),
		MatchConstraints: &admissionregistrationv1.MatchResources{
			MatchPolicy: ptr.To(admissionregistrationv1.Equivalent),
			ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods", "pods/ephemeralcontainers"},
					Scope: ptr.To(admissionregistrationv1.NamespacedScope)},
			}}},
		},
		// Only pods the webhook would inject: a sandbox (before or after an
		// update: marks are mutable), with a target container (by config,
		// or by annotation where config allows it), not Windows; on UPDATE,
		// only pods guardchain injected, so pods that ran before it was
		// installed can still be labelled.
		MatchConditions: []admissionregistrationv1.MatchCondition{
			// An injected pod stays matched on UPDATE whatever its marks
			// say now: stripping them must not take it out of the checks.
			{Name: "is-sandbox", Expression: "(" + isSandbox("object") + ") || (oldObject != null && ((" + isSandbox("oldObject") + ") || " +
				"(has(oldObject.spec.initContainers) && oldObject.spec.initContainers.exists(c, c.name == '" + InitContainerName + "'))))"},
			{Name: "has-target-container", Expression: fmt.Sprintf("object.spec.containers.exists(c, c.name in (%[1]s)) || "+
				"(has(object.spec.initContainers) && object.spec.initContainers.exists(c, c.name in (%[1]s) && c.name != '%[2]s' && "+
				"has(c.restartPolicy) && c.restartPolicy == 'Always'))", p.names, InitContainerName)},
			{Name: "created-or-injected", Expression: fmt.Sprintf("request.operation == 'CREATE' || "+
				"(has(oldObject.spec.initContainers) && oldObject.spec.initContainers.exists(c, c.name == '%s'))", InitContainerName)},
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
			// A create is judged whole; an update of a pod guardchain
			// injected (perhaps by an earlier release, with other settings)
			// only for what an update can change: images, ephemeral
			// containers.
			v("creating", "request.operation == 'CREATE'"),
			v("pod", "object.metadata.namespace + '/' + (object.metadata.name != '' ? object.metadata.name : object.metadata.generateName + '*')"),
			v("names", p.names),
			v("inits", "has(object.spec.initContainers) ? object.spec.initContainers : []"),
			v("ephemerals", "has(object.spec.ephemeralContainers) ? object.spec.ephemeralContainers : []"),
			v("targets", fmt.Sprintf("object.spec.containers.filter(c, c.name in variables.names) + "+
				"variables.inits.filter(c, c.name in variables.names && c.name != '%s' && has(c.restartPolicy) && c.restartPolicy == 'Always')", InitContainerName)),
			v("targetNames", "variables.targets.map(t, t.name)"),
			v("writers", fmt.Sprintf("variables.inits.filter(c, c.name == '%s')", InitContainerName)),
			v("bins", fmt.Sprintf("variables.inits.filter(c, c.name == '%s')", BinContainerName)),
			// guardchain-init first, or right after guardchain-bin: before
			// every other init container, native sidecar and container.
			v("first", fmt.Sprintf("size(variables.inits) > 0 && (variables.inits[0].name == '%[1]s' || "+
				"(variables.inits[0].name == '%[2]s' && size(variables.inits) > 1 && variables.inits[1].name == '%[1]s'))", InitContainerName, BinContainerName)),
			// Every mount path as the kubelet would leave it, so the
			// comparisons below see what runc will mount.
			// A target's termination message too: the kubelet mounts its
			// file there.
			v("unclean", fmt.Sprintf("(variables.inits + object.spec.containers).filter(c, (has(c.volumeMounts) && c.volumeMounts.exists(m, !%[1]s)) || "+
				"(has(c.volumeDevices) && c.volumeDevices.exists(m, !%[2]s))).map(c, c.name) + "+
				"variables.targets.filter(c, has(c.terminationMessagePath) && !%[3]s).map(c, c.name)", clean("m.mountPath"), clean("m.devicePath"), clean("c.terminationMessagePath"))),
			// Ephemeral containers come by update: judged then, and by the audit.
			v("ephemeralUnclean", fmt.Sprintf("variables.ephemerals.filter(c, has(c.volumeMounts) && c.volumeMounts.exists(m, !%s)).map(c, c.name)", clean("m.mountPath"))),
			v("writerTmp", fmt.Sprintf("variables.first && has(%[1]s.volumeMounts) ? %[1]s.volumeMounts.filter(m, m.mountPath == '%[2]s') : []", w, TmpPath)),
			v("chainVolume", "size(variables.writerTmp) == 1 ? variables.writerTmp[0].name : ''"),
			// Each target mounts /tmp once, from the writer's volume and
			// subPath, and nothing over a chain file.
			v("unmounted", fmt.Sprintf("variables.targets.filter(t, !(has(t.volumeMounts) && size(t.volumeMounts.filter(m, m.mountPath == '%[1]s')) == 1 && "+
				"t.volumeMounts.exists(m, m.mountPath == '%[1]s' && variables.writerTmp.exists(w, w.name == m.name && "+
				"(has(w.subPath) ? w.subPath : '') == (has(m.subPath) ? m.subPath : '') && "+
				"(has(w.subPathExpr) ? w.subPathExpr : '') == (has(m.subPathExpr) ? m.subPathExpr : ''))) && "+
				"!t.volumeMounts.exists(m, m.mountPath.startsWith('%[1]s/nemoclaw-')) && "+
				"!(has(t.volumeDevices) && t.volumeDevices.exists(d, d.devicePath == '%[1]s' || d.devicePath.startsWith('%[1]s/'))) && "+
				"!(has(t.terminationMessagePath) && (t.terminationMessagePath == '%[1]s' || t.terminationMessagePath.startsWith('%[1]s/nemoclaw-'))))).map(t, t.name)", TmpPath)),
			// Nothing a target mounts (its termination message file
			// included) lies inside another of its mounts whose files a
			// container can write: runc follows a symlink there.
			v("fixedVolumes", "has(object.spec.volumes) ? object.spec.volumes.filter(v, has(v.configMap) || has(v.secret) || has(v.downwardAPI) || has(v.projected)).map(v, v.name) : []"),
			// Paths compare with the images' directory aliases resolved, and
			// nothing lies inside /dev/shm, which every container of the
			// pod shares and can write; the runtime's own mounts (/etc/hosts,
			// /dev/shm, ...) count as the target's.
			// As written too: a volume at /var hides the image's /var/run.
			v("nested", fmt.Sprintf("variables.targets.filter(t, (has(t.volumeMounts) && t.volumeMounts.exists(o, !(o.name in variables.fixedVolumes) && (o.mountPath == '/' || "+
				"(t.volumeMounts.exists(m, m.mountPath.startsWith(o.mountPath + '/') || %[1]s.startsWith(%[2]s + '/')) || "+
				"(has(t.volumeDevices) && t.volumeDevices.exists(d, d.devicePath.startsWith(o.mountPath + '/') || %[3]s.startsWith(%[2]s + '/'))) || "+
				"(has(t.terminationMessagePath) && (t.terminationMessagePath.startsWith(o.mountPath + '/') || %[4]s.startsWith(%[2]s + '/'))) || "+
				"%[6]s.exists(x, x.startsWith(o.mountPath + '/') || x.startsWith(%[2]s + '/')))))) || "+
				"(has(t.volumeMounts) && t.volumeMounts.exists(m, %[1]s.startsWith('%[5]s/'))) || "+
				"(has(t.volumeDevices) && t.volumeDevices.exists(d, %[3]s.startsWith('%[5]s/'))) || "+
				"(has(t.terminationMessagePath) && %[4]s.startsWith('%[5]s/'))).map(t, t.name)",
				canon("m.mountPath"), canon("o.mountPath"), canon("d.devicePath"), canon("t.terminationMessagePath"), sharedMemoryPath, celList(runtimePaths))),
			v("emptyDir", "variables.writerTmp.all(w, has(object.spec.volumes) && object.spec.volumes.exists(v, v.name == w.name && has(v.emptyDir)))"),
			// No container but the targets and guardchain's own writes the
			// chain's volume, or touches guardchain's binary.
			// No container but the targets and guardchain's own init
			// containers mounts the chain's volume (read-only neither: a
			// privileged or CAP_SYS_ADMIN container remounts it read-write),
			// or guardchain's binary; none but those init containers has
			// their names.
			v("shared", fmt.Sprintf("variables.inits.filter(c, !(c.name in variables.targetNames) && !((%[1]s) && !has(c.restartPolicy)) && has(c.volumeMounts) && "+
				"c.volumeMounts.exists(m, m.name == variables.chainVolume || m.name == '%[2]s')).map(c, c.name) + "+
				"object.spec.containers.filter(c, !(c.name in variables.targetNames) && ((%[1]s) || (has(c.volumeMounts) && "+
				"c.volumeMounts.exists(m, m.name == variables.chainVolume || m.name == '%[2]s')))).map(c, c.name) + "+
				"variables.ephemerals.filter(c, has(c.volumeMounts) && c.volumeMounts.exists(m, m.name == variables.chainVolume || "+
				"m.name == '%[2]s')).map(c, c.name)", own, BinVolumeName)),
			v("source", p.source),
			v("writerEnv", fmt.Sprintf("variables.first && has(%[1]s.env) ? %[1]s.env : []", w)),
			// The writer's user: root (which makes /tmp sticky), or the
			// owner where the writer mode says so (owner; auto for a pod that
			// asks to run as non-root). Its securityContext is one another
			// webhook may change, but not into a writer that leaves /tmp
			// without the sticky bit where it need not.
			v("writerMode", fmt.Sprintf("variables.first && has(%[1]s.securityContext) && has(%[1]s.securityContext.runAsUser) && %[1]s.securityContext.runAsUser == 0 ? 'root' : "+
				"(%[2]s == 'owner' || (%[2]s == 'auto' && ((has(object.spec.securityContext) && has(object.spec.securityContext.runAsNonRoot) && object.spec.securityContext.runAsNonRoot) || "+
				"object.spec.containers.all(c, has(c.securityContext) && has(c.securityContext.runAsNonRoot) && c.securityContext.runAsNonRoot))) ? 'owner' : 'not-allowed')", w, p.writer)),
			// What the webhook renders for these settings, each variable
			// once; nothing else of guardchain's; a subPathExpr that expands
			// the same in the writer as in the targets.
			v("settings", strings.Join([]string{
				env(initguards.EnvDir, "'"+TmpPath+"'"),
				env(initguards.EnvSource, "variables.source"),
				fmt.Sprintf("(variables.source == '%s' ? size(variables.writerEnv.filter(e, e.name == '%s')) == 0 : %s)",
					SourceEmbedded, initguards.EnvPreloadsDir, env(initguards.EnvPreloadsDir, p.preloadsDir)),
				env(initguards.EnvRequire, p.require),
				// Where proxy-env.sh points the proxy and the caches shapes
				// the sandbox's environment, not which guards load (egress is
				// the network policy's to enforce): set once, as a literal,
				// but not pinned to the config, so that while an upgrade
				// changes them, pods the previous replicas inject still pass.
				once(initguards.EnvProxyHost),
				once(initguards.EnvProxyPort),
				once(initguards.EnvCacheRedirects),
				once(initguards.EnvGitSSLCAInfo),
				env(initguards.EnvTerminationLog, "'/dev/termination-log'"),
				fmt.Sprintf("(size(variables.writerEnv.filter(e, e.name == '%[2]s')) == 1 && variables.writerEnv.exists(e, e.name == '%[2]s' && "+
					"!has(e.valueFrom) && has(e.value) && e.value.matches('^(root|uid:[0-9]+(:[0-9]+)?)$') && (%[1]s == '' || e.value == %[1]s)))", p.ownership, initguards.EnvOwnership),
				fmt.Sprintf("size(variables.writerEnv.filter(e, e.name == '%[1]s' && !has(e.valueFrom))) == size(variables.writerEnv.filter(e, e.name == '%[1]s')) && "+
					"size(variables.writerEnv.filter(e, e.name == '%[1]s')) <= 1", initguards.EnvOwnershipFrom),
				fmt.Sprintf("variables.writerEnv.all(e, !e.name.startsWith('GUARDCHAIN_') || e.name in %s)", celList(writerEnvNames)),
				// Other env and envFrom only to expand a /tmp subPathExpr,
				// and none that names guardchain's variables or reads the
				// writer's own resources.
				// A /tmp subPathExpr: one target, whose env and envFrom the
				// writer has, every entry in order (the kubelet takes the
				// last of a name); else no env but guardchain's.
				fmt.Sprintf("(variables.writerTmp.exists(m, has(m.subPathExpr)) ? "+
					"(size(variables.targets) == 1 && variables.writerEnv.filter(e, !e.name.startsWith('GUARDCHAIN_')) == "+
					"(has(variables.targets[0].env) ? variables.targets[0].env.filter(e, !e.name.startsWith('GUARDCHAIN_')) : []) && "+
					"!has(%[1]s.envFrom) && !has(variables.targets[0].envFrom) && "+
					"variables.writerEnv.all(e, e.name.startsWith('GUARDCHAIN_') || !has(e.valueFrom) || "+
					"(has(e.valueFrom.fieldRef) && e.valueFrom.fieldRef.fieldPath in "+celList(immutableFields)+"))) : "+
					"(variables.writerEnv.all(e, e.name.startsWith('GUARDCHAIN_')) && !has(%[1]s.envFrom)))", w),
				"variables.writerTmp.all(m, !has(m.subPathExpr) || !m.subPathExpr.contains('$(GUARDCHAIN_'))",
				// A /tmp subPathExpr is a literal, or exactly one variable the
				// target declares as a literal without references (anything
				// else may take a Service link's value, which changes after
				// create) or from the pod's fields that cannot change.
				fmt.Sprintf("variables.writerTmp.all(m, !has(m.subPathExpr) || !m.subPathExpr.contains('$(') || (size(variables.targets) == 1 && has(variables.targets[0].env) && "+
					"variables.targets[0].env.exists(e, '$(' + e.name + ')' == m.subPathExpr) && "+
					"variables.targets[0].env.filter(e, '$(' + e.name + ')' == m.subPathExpr).all(e, (!has(e.valueFrom) && !(has(e.value) && e.value.contains('$('))) || "+
					"(has(e.valueFrom) && has(e.valueFrom.fieldRef) && e.valueFrom.fieldRef.fieldPath in %s))))", celList(immutableFields)),
				"variables.writerMode != 'not-allowed'",
				"variables.writerEnv.all(e, e.name.startsWith('GUARDCHAIN_') || ((!has(e.value) || !e.value.contains('$(GUARDCHAIN_')) && " +
					"!(has(e.valueFrom) && has(e.valueFrom.resourceFieldRef))))",
			}, " && ")),
			// The writer is initguards emit, run once: from the init image
			// (embedded source), or copied from it by guardchain-bin and run
			// in a target's image (image and auto sources), with nothing
			// mounted but /tmp and the copy, and the copy made as rendered.
			// The writer is initguards emit, run once: from the init image
			// (embedded source), or in a target's image (image and auto
			// sources) from the init image mounted as an image volume, or
			// from the copy guardchain-bin made of it; with nothing mounted
			// but /tmp and that, and the copy made as rendered.
			v("program", fmt.Sprintf("variables.first && has(%[1]s.args) && %[1]s.args == ['emit'] && !has(%[1]s.restartPolicy) && !has(%[1]s.volumeDevices) && has(%[1]s.volumeMounts) && "+
				"(!has(%[1]s.terminationMessagePath) || %[1]s.terminationMessagePath == '/dev/termination-log') && "+
				"(variables.source == '%[2]s' ? "+
				"(%[3]s && (!has(%[1]s.command) || size(%[1]s.command) == 0) && size(%[1]s.volumeMounts) == 1 && size(variables.bins) == 0) : "+
				"(has(%[1]s.command) && %[1]s.command == ['%[4]s/initguards'] && (variables.targets.exists(t, t.name in %[10]s) ? variables.targets.filter(t, t.name in %[10]s) : variables.targets).exists(t, t.image == %[1]s.image) && "+
				"size(%[1]s.volumeMounts) == 2 && %[1]s.volumeMounts.exists(m, m.mountPath == '%[4]s' && m.name == '%[5]s' && has(m.readOnly) && m.readOnly && "+
				"!has(m.subPath) && !has(m.subPathExpr)) && has(object.spec.volumes) && "+
				"((size(variables.bins) == 0 && object.spec.volumes.exists(v, v.name == '%[5]s' && has(v.image) && %[9]s)) || "+
				"(size(variables.bins) == 1 && variables.inits[0].name == '%[6]s' && %[7]s && "+
				"has(%[8]s.args) && %[8]s.args == ['copy-self', '--to', '%[4]s/initguards'] && (!has(%[8]s.command) || size(%[8]s.command) == 0) && "+
				"!has(%[8]s.env) && !has(%[8]s.envFrom) && !has(%[8]s.restartPolicy) && !has(%[8]s.volumeDevices) && "+
				"has(%[8]s.volumeMounts) && size(%[8]s.volumeMounts) == 1 && %[8]s.volumeMounts[0].mountPath == '%[4]s' && %[8]s.volumeMounts[0].name == '%[5]s' && "+
				"object.spec.volumes.exists(v, v.name == '%[5]s' && has(v.emptyDir))))))",
				w, SourceEmbedded, isRepo(w+".image"), BinPath, BinVolumeName, BinContainerName, isRepo(b+".image"), b, isRepo("v.image.reference"), p.configNames)),
			// In a pod that shares its process namespace, a container other
			// than the targets that may run as a user the targets' processes
			// run as, or as the chain's owner, reaches the chain through
			// /proc/<pid>/root: each must say its user, and none of those
			// (root is out of scope, as with capabilities).
			v("ownerUID", fmt.Sprintf("variables.writerEnv.exists(e, e.name == '%[1]s' && has(e.value) && e.value.matches('^uid:[0-9]+(:[0-9]+)?$')) ? "+
				"int(variables.writerEnv.filter(e, e.name == '%[1]s')[0].value.split(':')[1]) : 0", initguards.EnvOwnership)),
			v("podUser", "has(object.spec.securityContext) && has(object.spec.securityContext.runAsUser) ? object.spec.securityContext.runAsUser : -1"),
			v("sameUser", fmt.Sprintf("(has(object.spec.shareProcessNamespace) && object.spec.shareProcessNamespace) || (has(object.spec.hostPID) && object.spec.hostPID) ? "+
				"(object.spec.containers + variables.inits.filter(c, has(c.restartPolicy) && c.restartPolicy == 'Always')).filter(c, !(c.name in variables.targetNames) && "+
				"(%[1]s == -1 || (%[1]s != 0 && ((variables.ownerUID > 0 && %[1]s == variables.ownerUID) || "+
				"variables.targets.exists(t, %[2]s == -1 || %[2]s == %[1]s || (has(t.env) && t.env.exists(e, e.name == '%[3]s' && !has(e.valueFrom) && has(e.value) && e.value == string(%[1]s)))))))).map(c, c.name) : []",
				runAsUser("c"), runAsUser("t"), EnvSandboxUID)),
			v("images", images("object")),
			v("requests", requests("object")),
			v("selected", selected("object")),
			// On update, pod containers cannot change, ephemeral ones
			// can be added: none may write the chain's volume.
			v("ephemeralShared", fmt.Sprintf("variables.ephemerals.filter(c, has(c.volumeMounts) && c.volumeMounts.exists(m, "+
				"m.name == variables.chainVolume || m.name == '%s')).map(c, c.name)", BinVolumeName)),
		},
		Validations: []admissionregistrationv1.Validation{
			{Expression: "!variables.creating || (variables.first)", Reason: forbidden,
				Message: "guardchain: the pod has no guardchain-init first among its init containers",
				MessageExpression: fmt.Sprintf("'guardchain: pod ' + variables.pod + ' has no %s first among its init containers: the guard chain would not be written "+
					"before its containers start (the mutating webhook did not run, or a later one moved it)'", InitContainerName)},
			listed(true, "container", "unclean", "guardchain: a container mounts a volume at a path that is not clean and absolute",
				" mounts a volume (or its termination message) at a path that is not clean and absolute; the kubelet would clean it (tmp is /tmp): write it so"),
			{Expression: "!variables.creating || (variables.first && size(variables.writerTmp) == 1)", Reason: forbidden,
				Message:           "guardchain: guardchain-init does not mount /tmp",
				MessageExpression: fmt.Sprintf("'guardchain: pod ' + variables.pod + ': %s does not mount %s once'", InitContainerName, TmpPath)},
			listed(true, "container", "unmounted", "guardchain: a target container does not mount at /tmp the volume guardchain-init writes",
				fmt.Sprintf(" does not mount at %s the volume (and subPath) %s writes the guard chain into, or has a mount, device or termination message over its files", TmpPath, InitContainerName)),
			listed(true, "container", "nested", "guardchain: a target container mounts something inside a volume a container can write",
				" mounts something (or its termination message) inside another of its volumes whose files a container can write: runc follows a symlink there, onto /tmp too; "+
					"mount it elsewhere, or inside a configMap, secret, downwardAPI or projected volume only"),
			{Expression: "!variables.creating || (variables.emptyDir)", Reason: forbidden,
				Message:           "guardchain: the chain's volume is not an emptyDir",
				MessageExpression: "'guardchain: pod ' + variables.pod + ': the volume at /tmp is not an emptyDir'"},
			listed(true, "container", "shared", "guardchain: a container that is not a target writes the chain's volume", writesChain),
			{Expression: "!variables.creating || (variables.program)", Reason: forbidden,
				Message: "guardchain: guardchain-init does not run initguards emit as rendered",
				MessageExpression: fmt.Sprintf("'guardchain: pod ' + variables.pod + ': %s does not run initguards emit as guardchain renders it "+
					"(from %s, or from it as an image volume or a copy by %s in a target image), with nothing else mounted'", InitContainerName, p.reposText, BinContainerName)},
			{Expression: "!variables.creating || (variables.settings)", Reason: forbidden,
				Message: "guardchain: guardchain-init does not have the configured settings",
				MessageExpression: fmt.Sprintf("'guardchain: pod ' + variables.pod + ': %s does not have the configured settings: each GUARDCHAIN_ variable once, "+
					"with the values the webhook renders, and no other'", InitContainerName)},
			{Expression: "!variables.creating || (size(variables.sameUser) == 0)", Reason: forbidden,
				Message: "guardchain: a container may run as a target or the owner of the chain in a pod that shares its process namespace",
				MessageExpression: "'guardchain: pod ' + variables.pod + ' shares its process namespace and container ' + variables.sameUser.join(', ') + " +
					"' may run as a user the targets run as or the owner of the chain (no runAsUser, or the same): through /proc/<pid>/root it could rewrite the guard chain; give it a runAsUser of its own (or root)'"},
			// Ephemeral containers exist only after create: these hold on
			// UPDATE and in the audit alike.
			listed(false, "container", "ephemeralShared", "guardchain: an ephemeral container writes the chain's volume", writesChain),
			{Expression: "size(variables.ephemerals) == 0 || !((has(object.spec.shareProcessNamespace) && object.spec.shareProcessNamespace) || " +
				"(has(object.spec.hostPID) && object.spec.hostPID))", Reason: forbidden,
				Message: "guardchain: an ephemeral container in a pod that shares its process namespace",
				MessageExpression: "'guardchain: pod ' + variables.pod + ': no ephemeral container in a pod that shares its process namespace (shareProcessNamespace, hostPID): " +
					"from there it reaches the chain through /proc'"},
			{Expression: "!variables.ephemerals.exists(c, has(c.targetContainerName) && (c.targetContainerName in variables.targetNames || " +
				"variables.inits.exists(i, i.name == c.targetContainerName)))", Reason: forbidden,
				Message: "guardchain: an ephemeral container targets a target container",
				MessageExpression: "'guardchain: pod ' + variables.pod + ': an ephemeral container may not share the process namespace of ' + " +
					"variables.targetNames.join(', ') + ' or of an init container (targetContainerName): from there it reaches the chain through /proc'"},
			{Expression: "variables.creating || variables.images == " + images("oldObject"), Reason: forbidden,
				Message: "guardchain: an update changes the image of a guardchain or target container",
				MessageExpression: "'guardchain: pod ' + variables.pod + ': an update may not change the images of guardchain-init, guardchain-bin or a target " +
					"(init containers run again from them when the pod sandbox is recreated); recreate the pod instead'"},
			{Expression: "variables.creating || variables.selected == " + selected("oldObject"), Reason: forbidden,
				Message: "guardchain: an update changes a label the webhook's objectSelector reads",
				MessageExpression: "'guardchain: pod ' + variables.pod + ': an update may not change the labels the webhook selects pods by (webhook.objectSelector): " +
					"without them the pod would leave these checks; recreate the pod instead'"},
			listed(false, "ephemeral container", "ephemeralUnclean", "guardchain: an ephemeral container mounts a volume at a path that is not clean and absolute",
				" mounts a volume at a path that is not clean and absolute; the kubelet would clean it: write it so"),
			{Expression: "variables.creating || variables.requests == " + requests("oldObject"), Reason: forbidden,
				Message: "guardchain: an update changes an annotation that chose the pod's guard chain settings",
				MessageExpression: "'guardchain: pod ' + variables.pod + ': an update may not change the guardchain.dev/ annotations that chose its guard chain settings " +
					"(the pod runs what they said at create); recreate the pod instead'"},
		},
	}
}
