package webhook

import (
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/guardchain/guardchain/initguards"
)

// A /tmp subPathExpr: guardchain-init must expand it as the target does.

// checkSubPathExpr refuses a /tmp subPathExpr that would not expand the same
// in guardchain-init as in every target: more than one target (each
// expands it with its own env), a variable it names that is a GUARDCHAIN_*
// one (the writer's own settings come after the target's env and win), or a
// resourceFieldRef in the target's env (it reads the limits of the container
// it is in).
func (in *injection) checkSubPathExpr(mount corev1.VolumeMount, target *corev1.Container, targets []string) *Result {
	if mount.SubPathExpr == "" {
		return nil
	}
	if len(targets) > 1 {
		r := in.refuse(ReasonSubPathExpr, "targets %s mount /tmp with subPathExpr %q, which each expands with its own env; the chain can fill only one directory",
			strings.Join(targets, ", "), mount.SubPathExpr)
		return &r
	}
	// The kubelet expands it again at every container start, from the pod
	// as it is then: only values that cannot change after create expand the
	// same for the writer and, later, the target.
	if len(target.EnvFrom) > 0 {
		r := in.refuse(ReasonSubPathExpr, "container %s mounts /tmp with subPathExpr %q and takes env from envFrom, which can change after guardchain-init expanded it",
			target.Name, mount.SubPathExpr)
		return &r
	}
	for _, e := range target.Env {
		if e.ValueFrom != nil && (e.ValueFrom.FieldRef == nil || !slices.Contains(immutableFields, e.ValueFrom.FieldRef.FieldPath)) {
			r := in.refuse(ReasonSubPathExpr, "container %s mounts /tmp with subPathExpr %q and its %s comes from a source that can change after guardchain-init expanded it, "+
				"or that reads the container's own resources; use literal values or the pod's name, namespace or uid",
				target.Name, mount.SubPathExpr, e.Name)
			return &r
		}
	}
	// A literal, or exactly $(NAME) for a variable the target declares as a
	// literal without references or from an immutable field: any other
	// reference may take a Service link's value (the kubelet adds them to
	// every container's env), which changes when Services do.
	if strings.Contains(mount.SubPathExpr, "$(") {
		m := envRef.FindStringSubmatch(mount.SubPathExpr)
		declared := false
		for _, e := range target.Env {
			if m != nil && mount.SubPathExpr == m[0] && e.Name == m[1] {
				declared = true
				if e.ValueFrom == nil && strings.Contains(e.Value, "$(") {
					declared = false
					break
				}
			}
		}
		if !declared {
			r := in.refuse(ReasonSubPathExpr, "container %s mounts /tmp with subPathExpr %q: write it as one $(NAME) of a variable the container declares, "+
				"with a literal value or the pod's name, namespace or uid; other references may expand to a Service's address, which changes",
				target.Name, mount.SubPathExpr)
			return &r
		}
	}
	names := referencedNames(target, mount.SubPathExpr)
	for n := range names {
		if strings.HasPrefix(n, initguards.EnvPrefix) {
			r := in.refuse(ReasonSubPathExpr, "container %s mounts /tmp with subPathExpr %q, which names %s, a variable guardchain-init sets for itself",
				target.Name, mount.SubPathExpr, n)
			return &r
		}
	}
	return nil
}

// immutableFields are the pod fields a fieldRef may read for a /tmp
// subPathExpr: they cannot change after create.
var immutableFields = []string{"metadata.name", "metadata.namespace", "metadata.uid", "spec.serviceAccountName"}

// expansionEnv is what guardchain-init needs to expand the target's /tmp
// subPathExpr as the target does: the target's env (but its GUARDCHAIN_*
// entries, which checkSubPathExpr keeps out of the expression), every entry
// in order, and its envFrom.
func expansionEnv(target *corev1.Container) (env []corev1.EnvVar, envFrom []corev1.EnvFromSource) {
	for _, e := range target.Env {
		if !strings.HasPrefix(e.Name, initguards.EnvPrefix) {
			env = append(env, *e.DeepCopy())
		}
	}
	for _, f := range target.EnvFrom {
		envFrom = append(envFrom, *f.DeepCopy())
	}
	return env, envFrom
}

// referencedNames are the variables expr names as $(VAR), and what the
// target's env entries of those names name in turn.
func referencedNames(c *corev1.Container, expr string) map[string]bool {
	want := map[string]bool{}
	pending := []string{expr}
	for len(pending) > 0 {
		s := pending[0]
		pending = pending[1:]
		for _, m := range envRef.FindAllStringSubmatch(s, -1) {
			if want[m[1]] {
				continue
			}
			want[m[1]] = true
			for _, e := range c.Env {
				if e.Name == m[1] {
					pending = append(pending, e.Value)
				}
			}
		}
	}
	return want
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)`)
