package webhook

import (
	"fmt"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/guardchain/guardchain/initguards"
)

// Who owns the chain: the user that will run NemoClaw's entrypoint, which
// replaces every guard with mv -f and so must own them in the sticky /tmp.

// OwnershipAuto is the ownership setting that reads the owner from the pod
// (resolveOwnership); root and uid:N[:G] are fixed owners.
const OwnershipAuto = "auto"

// The env OpenShell's Kubernetes driver writes into the agent container: the
// uid and gid its supervisor (root, PID 1) drops to before it starts the
// entrypoint, whatever the pod's securityContext and the image's USER say.
const (
	EnvSandboxUID = "OPENSHELL_SANDBOX_UID"
	EnvSandboxGID = "OPENSHELL_SANDBOX_GID"
)

// StockOwnership is the stock NemoClaw images' sandbox user, the owner when
// nothing in the pod names another.
const StockOwnership = initguards.DefaultOwnership

// validateOwnership accepts what config and the annotation may say.
func validateOwnership(s string) error {
	if s == OwnershipAuto {
		return nil
	}
	if _, err := initguards.ParseOwnership(s); err != nil {
		return fmt.Errorf("%w (or auto)", err)
	}
	return nil
}

// resolveOwnership turns the auto setting into an owner for target, and
// says where it came from: the target's literal OPENSHELL_SANDBOX_UID (and
// _GID, else the same number, as OpenShell defaults it), else its effective
// non-root runAsUser (and runAsGroup), else the stock image user. A fixed
// setting is returned as it is. uid 0 from the env means an entrypoint that
// runs as root: ownership root.
func resolveOwnership(setting, settingFrom string, spec *corev1.PodSpec, target *corev1.Container) (ownership, from string) {
	if setting != OwnershipAuto {
		return setting, settingFrom
	}
	if uid, ok := literalID(target, EnvSandboxUID); ok {
		gid, gok := literalID(target, EnvSandboxGID)
		if !gok {
			gid = uid
		}
		from = fmt.Sprintf("env %s of container %s", EnvSandboxUID, target.Name)
		if uid == 0 {
			return "root", from
		}
		return fmt.Sprintf("uid:%d:%d", uid, gid), from
	}
	uid, uidFrom := effectiveID(spec, target, func(sc *corev1.SecurityContext) *int64 { return sc.RunAsUser },
		func(sc *corev1.PodSecurityContext) *int64 { return sc.RunAsUser })
	if uid != nil && *uid > 0 {
		from = "runAsUser of " + uidFrom
		gid, _ := effectiveID(spec, target, func(sc *corev1.SecurityContext) *int64 { return sc.RunAsGroup },
			func(sc *corev1.PodSecurityContext) *int64 { return sc.RunAsGroup })
		if gid != nil && *gid >= 0 {
			return fmt.Sprintf("uid:%d:%d", *uid, *gid), from
		}
		return fmt.Sprintf("uid:%d", *uid), from
	}
	return StockOwnership, "default: the stock NemoClaw image user"
}

// literalID is the value of the last env entry named name (the kubelet takes
// the last of a name), when it is a literal id; a valueFrom, an envFrom
// source or a value that is no id gives nothing to read.
func literalID(c *corev1.Container, name string) (int64, bool) {
	for i := len(c.Env) - 1; i >= 0; i-- {
		e := c.Env[i]
		if e.Name != name {
			continue
		}
		if e.ValueFrom != nil {
			return 0, false
		}
		n, err := strconv.ParseUint(e.Value, 10, 32)
		if err != nil || n == 1<<32-1 {
			return 0, false
		}
		return int64(n), true
	}
	return 0, false
}

// effectiveID is the container's securityContext field, else the pod's, and
// which of the two it came from.
func effectiveID(spec *corev1.PodSpec, c *corev1.Container, cf func(*corev1.SecurityContext) *int64, pf func(*corev1.PodSecurityContext) *int64) (*int64, string) {
	if c.SecurityContext != nil {
		if v := cf(c.SecurityContext); v != nil {
			return v, "container " + c.Name
		}
	}
	if spec.SecurityContext != nil {
		if v := pf(spec.SecurityContext); v != nil {
			return v, "the pod"
		}
	}
	return nil, ""
}

// sameUserInSharedPIDs names a container other than the targets (a regular
// one or a native sidecar; init containers end before the targets start)
// of a pod that shares its process namespace (shareProcessNamespace,
// hostPID) that may run as a user the targets' processes run as, or as the
// chain's owner: the kernel lets a process of the same user into another's
// files through /proc/<pid>/root, and there the owner may replace the
// guards, and anyone may where /tmp is not sticky (a writer that is not
// root cannot make it so). So each must say its user (runAsUser, on it or
// the pod: else it runs as its image's), and it must be none of the
// owner's, a target's, or a target's OPENSHELL_SANDBOX_UID; a target that
// does not say its user leaves only root. Root is the threat model's: out
// of scope there, as is every container with CAP_SYS_PTRACE.
func sameUserInSharedPIDs(spec *corev1.PodSpec, targets []string, owner initguards.Policy) (container, user string) {
	if !ptr.Deref(spec.ShareProcessNamespace, false) && !spec.HostPID {
		return "", ""
	}
	var podUID *int64
	if spec.SecurityContext != nil {
		podUID = spec.SecurityContext.RunAsUser
	}
	uidOf := func(c *corev1.Container) *int64 {
		if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
			return c.SecurityContext.RunAsUser
		}
		return podUID
	}
	// taken are the users the targets' processes may run as; unknown, that
	// a target does not say its own.
	taken := map[int64]string{}
	if owner.UID > 0 {
		taken[int64(owner.UID)] = "the chain's owner"
	}
	unknown := ""
	for _, t := range targets {
		c := containerByName(spec, t)
		if uid := uidOf(c); uid == nil {
			unknown = t
		} else {
			taken[*uid] = "the user target " + t + " runs as"
		}
		for _, e := range c.Env {
			if e.Name == EnvSandboxUID && e.ValueFrom == nil {
				if n, err := strconv.ParseInt(e.Value, 10, 64); err == nil {
					taken[n] = "target " + t + "'s OPENSHELL_SANDBOX_UID"
				}
			}
		}
	}
	check := func(c *corev1.Container) (string, string) {
		if slices.Contains(targets, c.Name) {
			return "", ""
		}
		uid := uidOf(c)
		switch {
		case uid == nil:
			return c.Name, "its image's user, which may be one the targets run as"
		case *uid == 0:
			return "", ""
		case unknown != "":
			return c.Name, fmt.Sprintf("uid %d, while target %s runs as its image's user, which may be the same", *uid, unknown)
		case taken[*uid] != "":
			return c.Name, fmt.Sprintf("uid %d, %s", *uid, taken[*uid])
		}
		return "", ""
	}
	for i := range spec.Containers {
		if n, u := check(&spec.Containers[i]); n != "" {
			return n, u
		}
	}
	for i := range spec.InitContainers {
		if c := &spec.InitContainers[i]; ptr.Deref(c.RestartPolicy, "") == corev1.ContainerRestartPolicyAlways {
			if n, u := check(c); n != "" {
				return n, u
			}
		}
	}
	return "", ""
}
