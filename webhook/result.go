package webhook

import (
	corev1 "k8s.io/api/core/v1"
)

// What Inject did and why: the outcome, the deciding reason and the notes,
// each as the admission warning, log line and metric label carry it.

// Outcome is what Inject decided for a pod.
type Outcome string

const (
	// OutcomeInjected: the pod was changed to carry the chain.
	OutcomeInjected Outcome = "injected"
	// OutcomeUnchanged: the pod already carried everything.
	OutcomeUnchanged Outcome = "unchanged"
	// OutcomeSkipped: the pod is admitted untouched, with a reason.
	OutcomeSkipped Outcome = "skipped"
	// OutcomeDenied: the pod must be refused, with a reason.
	OutcomeDenied Outcome = "denied"
)

// Reason is why Inject skipped, refused or only partly did something. The
// same value goes into the admission warning, the log line and the metric
// label, so the three never disagree.
type Reason string

const (
	ReasonNone               Reason = ""
	ReasonNoTargetContainer  Reason = "no-target-container"
	ReasonWindowsPod         Reason = "windows-pod"
	ReasonTmpNotEmptyDir     Reason = "tmp-volume-not-emptydir"
	ReasonTmpVolumesDiffer   Reason = "tmp-volumes-differ"
	ReasonChainShadowed      Reason = "chain-shadowed"
	ReasonVolumeNameTaken    Reason = "volume-name-taken"
	ReasonBadAnnotation      Reason = "bad-annotation"
	ReasonOverrideForbidden  Reason = "override-not-allowed"
	ReasonUnknownContainer   Reason = "unknown-container"
	ReasonNodeOptionsFrom    Reason = "node-options-from-source"
	ReasonMountPathNotClean  Reason = "mount-path-not-clean"
	ReasonChainVolumeShared  Reason = "chain-volume-shared"
	ReasonContainerNameTaken Reason = "container-name-taken"
	ReasonSubPathExpr        Reason = "subpath-expr-differs"
	ReasonMountNested        Reason = "mount-nested"
	ReasonProcessNamespace   Reason = "process-namespace-shared"
)

// Note is one reason with its human sentence.
type Note struct {
	Reason  Reason
	Message string
}

// Warning is the admission warning text for a note.
func (n Note) Warning() string { return "guardchain: " + n.Message + " [" + string(n.Reason) + "]" }

// Result is what Inject did and why.
type Result struct {
	// Pod is the mutated pod for OutcomeInjected; otherwise the input, untouched.
	Pod     *corev1.Pod
	Outcome Outcome
	// Reason is the deciding reason for skipped or denied pods.
	Reason Reason
	// Notes are every skip, refusal or caveat, for warnings and logs.
	Notes []Note
}

// Warnings renders the notes as admission warnings.
func (r Result) Warnings() []string {
	if len(r.Notes) == 0 {
		return nil
	}
	out := make([]string, len(r.Notes))
	for i, n := range r.Notes {
		out[i] = n.Warning()
	}
	return out
}

// Message is the one-line explanation for a denial.
func (r Result) Message() string {
	for _, n := range r.Notes {
		if n.Reason == r.Reason {
			return "guardchain: " + n.Message
		}
	}
	return "guardchain: " + string(r.Reason)
}
