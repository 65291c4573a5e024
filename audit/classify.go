// Package audit finds the sandbox pods a cluster runs and says, for each,
// whether the guard chain is in place: guarded, stale (another release's
// chain: restart to update), unguarded (created before guardchain was
// installed, or while the webhook was bypassed) or failed (its init
// container did not complete), by the backstop's own expressions (Judge).
// Classify is pure; Audit reads the cluster; Main is the command.
package audit

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/guardchain/guardchain/guards"
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

// Reference is what "guarded" means: the backstop's own judgment (its
// match conditions and validations, evaluated by Judge), and the chain and
// version of the current release.
type Reference struct {
	Judge          *Judge
	Version, Chain string
}

// Targeted reports whether the backstop applies to p: a sandbox pod (by
// OpenShell's marks) with a target container, that can land on Linux. The
// webhook's registration selects the same pods.
func (r Reference) Targeted(p *corev1.Pod) bool {
	ok, err := r.Judge.Selects(p)
	// A pod guardchain injected stays one to judge if its marks were
	// removed since, as the backstop keeps judging its updates.
	return (err == nil && ok) || slices.ContainsFunc(p.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == webhook.InitContainerName })
}

// Classify says what state p is in, and why in a few words. It reads the
// pod's spec and status, never only its annotations, which anyone can write:
// unguarded is what the backstop would refuse at create, or a writer that
// reported another chain than the pod records.
func Classify(p *corev1.Pod, r Reference) (State, string) {
	problems, err := r.Judge.Problems(p)
	if err != nil {
		return Unguarded, "cannot be judged: " + err.Error()
	}
	if len(problems) > 0 {
		why := trimLead(problems[0], p)
		if !webhook.WritesChainFirst(&p.Spec) {
			why = "no " + webhook.InitContainerName + " (created before guardchain, or the webhook was bypassed)"
			if p.Annotations[webhook.AnnotationStatus] == webhook.StatusInjected {
				why = "annotated injected, but has no " + webhook.InitContainerName + " first"
			}
		}
		return Unguarded, why
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
	rep, done, ok := report(p)
	switch {
	case !done:
		return Guarded, ""
	case !ok:
		return Unguarded, webhook.InitContainerName + " completed without reporting what it staged"
	case rep.Source == guards.SourceEmbedded && rep.SHA256 != c:
		return Unguarded, fmt.Sprintf("%s staged chain %s, not the embedded chain %s the pod records", webhook.InitContainerName, short(rep.SHA256), short(c))
	}
	// Guarded; an auto source that staged the embedded chain says why.
	return Guarded, rep.Fallback
}

// report is the termination message of a guardchain-init that completed
// (done), parsed (ok).
func report(p *corev1.Pod) (rep initguards.Report, done, ok bool) {
	for _, s := range p.Status.InitContainerStatuses {
		if s.Name != webhook.InitContainerName || s.State.Terminated == nil || s.State.Terminated.ExitCode != 0 {
			continue
		}
		rep, ok = initguards.ParseReport(s.State.Terminated.Message)
		return rep, true, ok
	}
	return rep, false, false
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
