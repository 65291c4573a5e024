package webhook

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// linuxOS is the kubernetes.io/os label value of every Linux node; the
// kubelet sets that label on every node to its OS (linux or windows).
const linuxOS = string(corev1.Linux)

// WindowsOnly says why a pod can land only on Windows nodes, or "" when it
// may land on a Linux node. spec.os.name is the explicit form; a node
// selector or a required node affinity that excludes kubernetes.io/os=linux
// is the older one, and such a pod must not get the Linux init container
// either. Preferred affinity does not restrict where the pod lands.
func WindowsOnly(spec *corev1.PodSpec) string {
	if spec.OS != nil && spec.OS.Name == corev1.Windows {
		return "spec.os.name is windows"
	}
	if v, ok := spec.NodeSelector[corev1.LabelOSStable]; ok && v != linuxOS {
		return "its node selector requires " + corev1.LabelOSStable + "=" + v
	}
	if a := spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		terms := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		// The terms are ORed: the pod avoids Linux only if each one does.
		if len(terms) > 0 && !slices.ContainsFunc(terms, termAllowsLinux) {
			return "its required node affinity excludes " + corev1.LabelOSStable + "=" + linuxOS
		}
	}
	return ""
}

// termAllowsLinux reports whether a node labelled kubernetes.io/os=linux can
// satisfy the term's expressions on that label. Expressions on other labels
// and matchFields cannot make a Linux node a Windows one, so they are left
// out: in doubt, the pod counts as Linux and is injected.
func termAllowsLinux(term corev1.NodeSelectorTerm) bool {
	for _, e := range term.MatchExpressions {
		if e.Key != corev1.LabelOSStable {
			continue
		}
		switch e.Operator {
		case corev1.NodeSelectorOpIn:
			if !slices.Contains(e.Values, linuxOS) {
				return false
			}
		case corev1.NodeSelectorOpNotIn:
			if slices.Contains(e.Values, linuxOS) {
				return false
			}
		case corev1.NodeSelectorOpDoesNotExist:
			return false
		case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
			// "linux" is not an integer, so these never match it.
			return false
		}
	}
	return true
}
