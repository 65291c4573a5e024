package webhook

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// The owner is whoever runs NemoClaw's entrypoint in the target: what
// OpenShell's driver says in the env, else the user the container runs as,
// else the stock image user; a fixed setting is kept as it is.
func TestResolveOwnershipFollowsWhoRunsTheEntrypoint(t *testing.T) {
	env := func(kv ...string) []corev1.EnvVar {
		var out []corev1.EnvVar
		for i := 0; i < len(kv); i += 2 {
			out = append(out, corev1.EnvVar{Name: kv[i], Value: kv[i+1]})
		}
		return out
	}
	fromCM := corev1.EnvVar{Name: EnvSandboxUID, ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{Key: "uid"}}}
	sc := func(uid, gid *int64) *corev1.SecurityContext {
		return &corev1.SecurityContext{RunAsUser: uid, RunAsGroup: gid}
	}
	tests := []struct {
		name     string
		setting  string
		pod      *corev1.PodSecurityContext
		c        corev1.Container
		want     string
		wantFrom string
	}{
		{"combined topology: root supervisor drops to the env's uid", OwnershipAuto, nil,
			corev1.Container{Name: "agent", Env: env(EnvSandboxUID, "1000", EnvSandboxGID, "1000"), SecurityContext: sc(ptr.To(int64(0)), nil)},
			"uid:1000:1000", "env OPENSHELL_SANDBOX_UID of container agent"},
		{"OpenShift range uid and gid", OwnershipAuto, nil,
			corev1.Container{Name: "agent", Env: env(EnvSandboxUID, "1000680000", EnvSandboxGID, "1000690000")},
			"uid:1000680000:1000690000", "env OPENSHELL_SANDBOX_UID of container agent"},
		{"no gid: the uid, as OpenShell defaults it", OwnershipAuto, nil,
			corev1.Container{Name: "agent", Env: env(EnvSandboxUID, "1000")}, "uid:1000:1000", "env OPENSHELL_SANDBOX_UID of container agent"},
		{"the last entry of a name wins, as in the kubelet", OwnershipAuto, nil,
			corev1.Container{Name: "agent", Env: env(EnvSandboxUID, "998", EnvSandboxUID, "1001")}, "uid:1001:1001", "env OPENSHELL_SANDBOX_UID of container agent"},
		{"env uid 0: a root entrypoint", OwnershipAuto, nil,
			corev1.Container{Name: "agent", Env: env(EnvSandboxUID, "0")}, "root", "env OPENSHELL_SANDBOX_UID of container agent"},
		{"an env value that is no id is not read", OwnershipAuto, nil,
			corev1.Container{Name: "agent", Env: env(EnvSandboxUID, "$(UID)"), SecurityContext: sc(ptr.To(int64(1500)), nil)}, "uid:1500", "runAsUser of container agent"},
		{"an env valueFrom is not read", OwnershipAuto, nil,
			corev1.Container{Name: "agent", Env: []corev1.EnvVar{fromCM}}, StockOwnership, "default: the stock NemoClaw image user"},
		{"a last valueFrom hides an earlier literal", OwnershipAuto, nil,
			corev1.Container{Name: "agent", Env: append(env(EnvSandboxUID, "1000"), fromCM)}, StockOwnership, "default: the stock NemoClaw image user"},
		{"container runAsUser over the pod's, pod runAsGroup", OwnershipAuto, &corev1.PodSecurityContext{RunAsUser: ptr.To(int64(3000)), RunAsGroup: ptr.To(int64(3001))},
			corev1.Container{Name: "agent", SecurityContext: sc(ptr.To(int64(2000)), nil)}, "uid:2000:3001", "runAsUser of container agent"},
		{"pod runAsUser", OwnershipAuto, &corev1.PodSecurityContext{RunAsUser: ptr.To(int64(3000))},
			corev1.Container{Name: "agent"}, "uid:3000", "runAsUser of the pod"},
		{"runAsUser 0 says nothing of the entrypoint's user", OwnershipAuto, nil,
			corev1.Container{Name: "agent", SecurityContext: sc(ptr.To(int64(0)), nil)}, StockOwnership, "default: the stock NemoClaw image user"},
		{"nothing in the pod: the stock image user", OwnershipAuto, nil,
			corev1.Container{Name: "agent"}, StockOwnership, "default: the stock NemoClaw image user"},
		{"a fixed setting is kept", "root", nil,
			corev1.Container{Name: "agent", Env: env(EnvSandboxUID, "1000")}, "root", "config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := &corev1.PodSpec{SecurityContext: tt.pod, Containers: []corev1.Container{tt.c}}
			got, from := resolveOwnership(tt.setting, "config", spec, &spec.Containers[0])
			if got != tt.want || from != tt.wantFrom {
				t.Errorf("resolveOwnership = %q (%s), want %q (%s)", got, from, tt.want, tt.wantFrom)
			}
			if err := validateOwnership(got); err != nil || got == OwnershipAuto {
				t.Errorf("resolved to %q, which initguards cannot take: %v", got, err)
			}
		})
	}
}
