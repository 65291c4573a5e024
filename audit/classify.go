// Package audit finds the sandbox pods a cluster runs and says, for each,
// whether the guard chain is in place: guarded, stale (another release's
// chain: restart to update), unguarded (created before guardchain was
// installed, or while the webhook was bypassed) or failed (its init
// container did not complete). Classify is pure; Run reads the cluster.
package audit

import (
	"fmt"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/guardchain/guardchain/initguards"
	"github.com/guardchain/guardchain/webhook"
)

// State is what the audit says of one pod.
type State string

const (
	Guarded   State = "guarded"
	Stale     State = "stale"
	Unguarded State = "unguarded"
	Failed    State = "failed"
)

// Reference is what "guarded" means: the target containers as the webhook
// picks them, and the chain and version of the current release.
type Reference struct {
	Containers []string
	// AnnotationTargets: pods may name their targets in
	// guardchain.dev/containers (config allowedOverrides has containers).
	AnnotationTargets bool
	Version, Chain    string
}

// Targeted reports whether the webhook would treat p as a sandbox: it
// carries OpenShell's marks, has a container (or native sidecar) it
// targets, and can land on Linux. The registration and the backstop select
// the same pods.
func (r Reference) Targeted(p *corev1.Pod) bool {
	if !webhook.IsSandbox(&p.ObjectMeta) || webhook.WindowsOnly(&p.Spec) != "" {
		return false
	}
	for _, c := range append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...) {
		if r.targets(p, c) {
			return true
		}
	}
	return false
}

// targets reports whether c is one of p's target containers: named in
// config or (where allowed) the pod's annotation; an init container only as a
// native sidecar.
func (r Reference) targets(p *corev1.Pod, c corev1.Container) bool {
	isInit := slices.ContainsFunc(p.Spec.InitContainers, func(i corev1.Container) bool { return i.Name == c.Name })
	if isInit && (webhook.IsOwnInitContainer(c.Name) || c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways) {
		return false
	}
	if slices.Contains(r.Containers, c.Name) {
		return true
	}
	v, ok := p.Annotations[webhook.AnnotationContainers]
	if !ok || !r.AnnotationTargets {
		return false
	}
	// The annotation adds targets; it never removes the configured ones.
	for _, n := range strings.Split(v, ",") {
		if strings.TrimSpace(n) == c.Name {
			return true
		}
	}
	return false
}

// Classify says what state p is in, and why in a few words. It reads the
// pod's spec and status, never only its annotations, which anyone can write.
func Classify(p *corev1.Pod, r Reference) (State, string) {
	if !webhook.WritesChainFirst(&p.Spec) {
		if p.Annotations[webhook.AnnotationStatus] == webhook.StatusInjected {
			return Unguarded, "annotated injected, but has no " + webhook.InitContainerName + " first"
		}
		return Unguarded, "no " + webhook.InitContainerName + " (created before guardchain, or the webhook was bypassed)"
	}
	if c := r.unmounted(p); c != "" {
		return Unguarded, "container " + c + " does not mount at /tmp the volume " + webhook.InitContainerName + " writes"
	}
	for _, s := range p.Status.InitContainerStatuses {
		if !webhook.IsOwnInitContainer(s.Name) {
			continue
		}
		if why := notCompleted(s); why != "" {
			return Failed, s.Name + " " + why
		}
	}
	v, c := p.Annotations[webhook.AnnotationVersion], p.Annotations[webhook.AnnotationChain]
	switch {
	case v != r.Version:
		return Stale, fmt.Sprintf("injected by %s, current %s: restart to update", orNone(v), r.Version)
	case c != r.Chain:
		return Stale, fmt.Sprintf("chain %s, current %s: restart to update", short(c), short(r.Chain))
	}
	// Guarded; an auto source that staged the embedded chain says why.
	return Guarded, fallback(p)
}

// fallback is why guardchain-init staged the embedded chain where the pod
// asked for the image's, from its termination message, or "".
func fallback(p *corev1.Pod) string {
	for _, s := range p.Status.InitContainerStatuses {
		if s.Name != webhook.InitContainerName || s.State.Terminated == nil {
			continue
		}
		if rep, ok := initguards.ParseReport(s.State.Terminated.Message); ok && rep.Fallback != "" {
			return rep.Fallback
		}
	}
	return ""
}

// unmounted names a target container that does not mount at /tmp the
// volume (and subPath) guardchain-init writes the chain into: a later
// webhook dropped or replaced it, and the chain is not where the gateway looks.
func (r Reference) unmounted(p *corev1.Pod) string {
	var writer *corev1.VolumeMount
	for i := range p.Spec.InitContainers {
		if c := &p.Spec.InitContainers[i]; c.Name == webhook.InitContainerName {
			writer = tmpMount(c)
		}
	}
	for _, c := range append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...) {
		if webhook.IsOwnInitContainer(c.Name) || !r.targets(p, c) {
			continue
		}
		m := tmpMount(&c)
		if writer == nil || m == nil || m.Name != writer.Name || m.SubPath != writer.SubPath || m.SubPathExpr != writer.SubPathExpr {
			return c.Name
		}
	}
	return ""
}

func tmpMount(c *corev1.Container) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if path.Clean(c.VolumeMounts[i].MountPath) == webhook.TmpPath {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

// notCompleted says how a guardchain init container failed, or "" if it
// completed or has not run yet (a pending pod is not a failed one).
func notCompleted(s corev1.ContainerStatus) string {
	if t := s.State.Terminated; t != nil {
		if t.ExitCode == 0 {
			return ""
		}
		return exited(t)
	}
	if t := s.LastTerminationState.Terminated; t != nil && t.ExitCode != 0 {
		return exited(t)
	}
	if w := s.State.Waiting; w != nil && w.Reason != "" && w.Reason != "PodInitializing" && w.Reason != "ContainerCreating" {
		return "waiting: " + w.Reason
	}
	return ""
}

func exited(t *corev1.ContainerStateTerminated) string {
	// initguards reports why it failed (untrusted preloads, a missing
	// guard, a failed write, bad input) as JSON.
	if rep, ok := initguards.ParseReport(t.Message); ok && rep.Reason != "" {
		return fmt.Sprintf("exited %d: %s: %s", t.ExitCode, rep.Reason, rep.Error)
	}
	msg := strings.TrimSpace(t.Message)
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if msg == "" {
		msg = t.Reason
	}
	return fmt.Sprintf("exited %d: %s", t.ExitCode, msg)
}

func orNone(s string) string {
	if s == "" {
		return "no release"
	}
	return s
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return orNone(sha)
}
