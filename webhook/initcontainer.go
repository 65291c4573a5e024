package webhook

import (
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/utils/ptr"

	"github.com/guardchain/guardchain/guards"
	"github.com/guardchain/guardchain/initguards"
)

// The init container that writes the chain: its command, env, user and
// resources, and its place first among the init containers.

// initContainer is the guardchain-init container for these settings.
func (in *injection) initContainer(set podSettings, mount corev1.VolumeMount, keepGuaranteed bool) corev1.Container {
	o := set.opts
	env := []corev1.EnvVar{
		{Name: "GUARDCHAIN_DIR", Value: TmpPath},
		{Name: "GUARDCHAIN_OWNERSHIP", Value: set.ownership},
		{Name: "GUARDCHAIN_PROXY_HOST", Value: o.ProxyHost},
		{Name: "GUARDCHAIN_PROXY_PORT", Value: strconv.Itoa(o.ProxyPort)},
		{Name: "GUARDCHAIN_REQUIRE", Value: requireList(o.Required)},
		{Name: "GUARDCHAIN_CACHE_REDIRECTS", Value: redirectList(o.CacheRedirects)},
	}
	if o.GitSSLCAInfo != "" {
		env = append(env, corev1.EnvVar{Name: "GUARDCHAIN_GIT_SSL_CAINFO", Value: o.GitSSLCAInfo})
	}
	return corev1.Container{
		Name:            InitContainerName,
		Image:           in.cfg.InitImage,
		ImagePullPolicy: in.cfg.ImagePullPolicy,
		Args:            []string{"emit"},
		Env:             env,
		Resources:       initResources(in.cfg.Resources, keepGuaranteed),
		VolumeMounts:    []corev1.VolumeMount{{Name: mount.Name, MountPath: TmpPath, SubPath: mount.SubPath}},
		SecurityContext: securityContext(set.policy),
		// The message kubectl shows when emit fails is its one-line error.
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		TerminationMessagePath:   corev1.TerminationMessagePathDefault,
	}
}

// initResources are config's, except in a Guaranteed pod: there requests are
// raised to the limits, so adding the init container never demotes the pod's
// QoS class (and its eviction order) to Burstable.
func initResources(r corev1.ResourceRequirements, keepGuaranteed bool) corev1.ResourceRequirements {
	out := *r.DeepCopy()
	if !keepGuaranteed {
		return out
	}
	if out.Requests == nil {
		out.Requests = corev1.ResourceList{}
	}
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if l, ok := out.Limits[name]; ok {
			out.Requests[name] = l.DeepCopy()
		}
	}
	return out
}

// guaranteed reports whether every container of the pod has CPU and memory
// limits equal to its requests (the Guaranteed QoS class); our own init
// container does not count.
func guaranteed(p *corev1.Pod) bool {
	seen := false
	// Indexing, not ranging by value: this runs on every admission and a
	// Container is large.
	for _, list := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range list {
			c := &list[i]
			if c.Name == InitContainerName {
				continue
			}
			seen = true
			for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				l, ok := c.Resources.Limits[name]
				if !ok {
					return false
				}
				if req, ok := c.Resources.Requests[name]; ok && req.Cmp(l) != 0 {
					return false
				}
			}
		}
	}
	return seen
}

// securityContext is the least the policy needs: root (uid 0, no
// capabilities: it owns the emptyDir and needs none) for the root policy; the
// owning uid, non-root, for uid:N, which passes the restricted Pod Security
// Standard.
func securityContext(p initguards.Policy) *corev1.SecurityContext {
	sc := &corev1.SecurityContext{
		RunAsUser:                ptr.To(int64(p.UID)),
		RunAsNonRoot:             ptr.To(p.UID != 0),
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		Privileged:               ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if p.GID >= 0 {
		sc.RunAsGroup = ptr.To(int64(p.GID))
	}
	return sc
}

func requireList(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ",")
}

func redirectList(vars []string) string {
	switch {
	case len(vars) == 0:
		return "none"
	case slices.Equal(vars, guards.CacheRedirectVars()):
		return "all"
	}
	return strings.Join(vars, ",")
}

// ensureInitContainerFirst puts c first in initContainers, replacing an
// earlier copy wherever it stands, so the chain exists before any other init
// container or native sidecar starts.
func ensureInitContainerFirst(spec *corev1.PodSpec, c corev1.Container) bool {
	if len(spec.InitContainers) > 0 && spec.InitContainers[0].Name == InitContainerName &&
		equality.Semantic.DeepEqual(&spec.InitContainers[0], &c) {
		return false
	}
	rest := make([]corev1.Container, 0, len(spec.InitContainers)+1)
	rest = append(rest, c)
	for _, ic := range spec.InitContainers {
		if ic.Name != InitContainerName {
			rest = append(rest, ic)
		}
	}
	spec.InitContainers = rest
	return true
}
