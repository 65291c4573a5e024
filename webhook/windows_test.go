package webhook

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// Which node constraints make a pod Windows-only; the golden files hold the
// whole pods, this the operators between them.
func TestWindowsOnly(t *testing.T) {
	os := func(op corev1.NodeSelectorOperator, values ...string) corev1.NodeSelectorRequirement {
		return corev1.NodeSelectorRequirement{Key: corev1.LabelOSStable, Operator: op, Values: values}
	}
	required := func(terms ...[]corev1.NodeSelectorRequirement) *corev1.Affinity {
		var ts []corev1.NodeSelectorTerm
		for _, t := range terms {
			ts = append(ts, corev1.NodeSelectorTerm{MatchExpressions: t})
		}
		return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: ts}}}
	}
	other := corev1.NodeSelectorRequirement{Key: "pool", Operator: corev1.NodeSelectorOpIn, Values: []string{"gpu"}}
	tests := []struct {
		name    string
		spec    corev1.PodSpec
		windows bool
	}{
		{"no constraint", corev1.PodSpec{}, false},
		{"os linux", corev1.PodSpec{OS: &corev1.PodOS{Name: corev1.Linux}}, false},
		{"os windows", corev1.PodSpec{OS: &corev1.PodOS{Name: corev1.Windows}}, true},
		{"selector linux", corev1.PodSpec{NodeSelector: map[string]string{corev1.LabelOSStable: "linux"}}, false},
		{"selector windows", corev1.PodSpec{NodeSelector: map[string]string{corev1.LabelOSStable: "windows"}}, true},
		{"selector on another label", corev1.PodSpec{NodeSelector: map[string]string{"pool": "windows"}}, false},
		{"In windows", corev1.PodSpec{Affinity: required([]corev1.NodeSelectorRequirement{os(corev1.NodeSelectorOpIn, "windows")})}, true},
		{"In linux windows", corev1.PodSpec{Affinity: required([]corev1.NodeSelectorRequirement{os(corev1.NodeSelectorOpIn, "linux", "windows")})}, false},
		{"NotIn linux", corev1.PodSpec{Affinity: required([]corev1.NodeSelectorRequirement{os(corev1.NodeSelectorOpNotIn, "linux")})}, true},
		{"NotIn windows", corev1.PodSpec{Affinity: required([]corev1.NodeSelectorRequirement{os(corev1.NodeSelectorOpNotIn, "windows")})}, false},
		{"Exists", corev1.PodSpec{Affinity: required([]corev1.NodeSelectorRequirement{os(corev1.NodeSelectorOpExists)})}, false},
		{"DoesNotExist", corev1.PodSpec{Affinity: required([]corev1.NodeSelectorRequirement{os(corev1.NodeSelectorOpDoesNotExist)})}, true},
		{"Gt", corev1.PodSpec{Affinity: required([]corev1.NodeSelectorRequirement{os(corev1.NodeSelectorOpGt, "1")})}, true},
		{"windows term and unconstrained term", corev1.PodSpec{Affinity: required(
			[]corev1.NodeSelectorRequirement{os(corev1.NodeSelectorOpIn, "windows")}, []corev1.NodeSelectorRequirement{other})}, false},
		{"windows term and term ANDing windows", corev1.PodSpec{Affinity: required(
			[]corev1.NodeSelectorRequirement{os(corev1.NodeSelectorOpIn, "windows")},
			[]corev1.NodeSelectorRequirement{other, os(corev1.NodeSelectorOpIn, "windows")})}, true},
		{"no terms", corev1.PodSpec{Affinity: required()}, false},
		{"preferred only", corev1.PodSpec{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{Weight: 1,
				Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{os(corev1.NodeSelectorOpIn, "windows")}}}}}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			why := WindowsOnly(&tt.spec)
			if (why != "") != tt.windows {
				t.Errorf("WindowsOnly = %q, want Windows-only %v", why, tt.windows)
			}
		})
	}
}
