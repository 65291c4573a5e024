package webhook

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/utils/ptr"

	"github.com/guardchain/guardchain/guards"
	"github.com/guardchain/guardchain/initguards"
	"github.com/guardchain/guardchain/internal/bufpool"
)

// The init container that writes the chain: its command, env, user and
// resources, and its place first among the init containers.

// initContainers are guardchain's init containers for these settings, in
// the order they run. With the embedded chain, one: guardchain-init runs
// initguards from the init image. With an image source, guardchain-init runs
// initguards inside the first target's image, where the image's packaged
// preloads are, so the chain is the bytes the sandbox image ships: from an
// image volume of the init image (one container), or from a copy that
// guardchain-bin makes into a small emptyDir first (two: about one second
// more, the kubelet's relist).
func (in *injection) initContainers(set podSettings, target *corev1.Container, mount corev1.VolumeMount, keepGuaranteed bool) []corev1.Container {
	o := set.opts
	var env []corev1.EnvVar
	var envFrom []corev1.EnvFromSource
	// A subPathExpr expands with the container's own env: the writer gets
	// the target's (all of it, every entry in order: the kubelet takes the
	// last of a name), or it would write outside the target's /tmp.
	if mount.SubPathExpr != "" {
		env, envFrom = expansionEnv(target)
	}
	settings := initguards.Settings{
		Dir:           TmpPath,
		Ownership:     set.ownership,
		OwnershipFrom: set.ownershipFrom,
		Source:        string(set.source),
		ProxyHost:     o.ProxyHost,
		ProxyPort:     strconv.Itoa(o.ProxyPort),
		Require:       requireList(o.Required),
		// Set even when empty: in an image source the writer runs in the
		// target's image, whose own ENV must not choose it.
		GitSSLCAInfo:   o.GitSSLCAInfo,
		CacheRedirects: redirectList(o.CacheRedirects),
		// What was staged (sha256, source, files) becomes the termination
		// message, readable with kubectl get pod.
		TerminationLog: corev1.TerminationMessagePathDefault,
	}
	if set.source != SourceEmbedded {
		settings.PreloadsDir = in.cfg.PreloadsDir
	}
	for _, e := range settings.Env() {
		env = append(env, corev1.EnvVar{Name: e.Name, Value: e.Value})
	}

	res := initResources(in.cfg.Resources, keepGuaranteed)
	writer := corev1.Container{
		Name:            InitContainerName,
		Image:           in.cfg.InitImage,
		ImagePullPolicy: in.cfg.ImagePullPolicy,
		Args:            []string{"emit"},
		Env:             env,
		EnvFrom:         envFrom,
		Resources:       res,
		VolumeMounts:    []corev1.VolumeMount{{Name: mount.Name, MountPath: TmpPath, SubPath: mount.SubPath, SubPathExpr: mount.SubPathExpr}},
		SecurityContext: securityContext(set.policy, set.writer, true),
		// A failed emit's one-line error is the message kubectl shows.
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		TerminationMessagePath:   corev1.TerminationMessagePathDefault,
	}
	if set.source == SourceEmbedded {
		return []corev1.Container{writer}
	}
	bin := BinPath + "/initguards"
	writer.Image, writer.ImagePullPolicy = target.Image, target.ImagePullPolicy
	writer.Command = []string{bin}
	writer.VolumeMounts = append(writer.VolumeMounts, corev1.VolumeMount{Name: BinVolumeName, MountPath: BinPath, ReadOnly: true})
	if set.imageVolume {
		// The init image itself, mounted read-only: initguards is at its root.
		return []corev1.Container{writer}
	}
	copier := corev1.Container{
		Name:                     BinContainerName,
		Image:                    in.cfg.InitImage,
		ImagePullPolicy:          in.cfg.ImagePullPolicy,
		Args:                     []string{"copy-self", "--to", bin},
		Resources:                res,
		VolumeMounts:             []corev1.VolumeMount{{Name: BinVolumeName, MountPath: BinPath}},
		SecurityContext:          securityContext(set.policy, set.writer, false),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		TerminationMessagePath:   corev1.TerminationMessagePathDefault,
	}
	return []corev1.Container{copier, writer}
}

// initResources are config's, except in a Guaranteed pod: there requests are
// raised to the limits, so adding the init container never demotes the pod's
// QoS class (and its eviction order) to Burstable.
func initResources(r corev1.ResourceRequirements, keepGuaranteed bool) corev1.ResourceRequirements {
	out := *r.DeepCopy()
	if keepGuaranteed {
		if out.Requests == nil {
			out.Requests = corev1.ResourceList{}
		}
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if l, ok := out.Limits[name]; ok {
				out.Requests[name] = l.DeepCopy()
			}
		}
	}
	canonical(out.Limits)
	canonical(out.Requests)
	return out
}

// canonical has each quantity keep its canonical string (String caches
// it), which every encoding of the container (the hash's, the memo's key,
// the JSON) would otherwise work out again: they read copies of the map's
// values. The value and its encodings are the same.
func canonical(l corev1.ResourceList) {
	for k, q := range l {
		_ = q.String()
		l[k] = q
	}
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
			if IsOwnInitContainer(c.Name) {
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

// runsNonRoot reports whether the pod asks that its containers run as
// non-root (the restricted Pod Security Standard requires it), where a root
// writer would be refused.
func runsNonRoot(spec *corev1.PodSpec) bool {
	if sc := spec.SecurityContext; sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot {
		return true
	}
	for _, c := range spec.Containers {
		if c.SecurityContext == nil || c.SecurityContext.RunAsNonRoot == nil || !*c.SecurityContext.RunAsNonRoot {
			return false
		}
	}
	return len(spec.Containers) > 0
}

// securityContext is the least the writer needs. WriterRoot: uid 0, which
// owns the kubelet's emptyDir and so may make it 1777, with CHOWN (and
// FOWNER, to chmod and replace files it gave away) only where the files
// belong to another uid. WriterOwner: the owning uid, non-root and with no
// capability, which passes the restricted Pod Security Standard. The
// guardchain-bin copier (writes=false) runs as the same user with none.
func securityContext(p initguards.Policy, w WriterMode, writes bool) *corev1.SecurityContext {
	uid, gid := int64(0), int64(0)
	caps := &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}
	if w == WriterOwner {
		uid, gid = int64(p.UID), int64(p.GID)
	} else if writes && (p.UID != 0 || p.GID > 0) {
		caps.Add = []corev1.Capability{"CHOWN", "FOWNER"}
	}
	sc := &corev1.SecurityContext{
		RunAsUser:                ptr.To(uid),
		RunAsNonRoot:             ptr.To(uid != 0),
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		Privileged:               ptr.To(false),
		Capabilities:             caps,
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if gid >= 0 {
		sc.RunAsGroup = ptr.To(gid)
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

// ensureInitContainersFirst puts want first among the init containers, in
// order, so the chain exists before any other init container or native
// sidecar starts. Where guardchain rendered the same containers before (the
// pod's init hash matches), what other webhooks may change in them
// (keepOthersEdits: an image rewritten to a mirror, a securityContext,
// resources) is kept and everything else is made as rendered. Otherwise
// (refresh: other settings, another target image or release, or containers
// guardchain did not render) want replaces them.
// want is the caller's to give: it is edited in place.
func ensureInitContainersFirst(spec *corev1.PodSpec, want []corev1.Container, refresh bool) bool {
	merged := want
	for i := range merged {
		if have := ownInit(spec.InitContainers, merged[i].Name); have != nil && !refresh {
			merged[i] = keepOthersEdits(*have, merged[i])
		}
	}
	inPlace := len(spec.InitContainers) >= len(merged)
	for i := 0; inPlace && i < len(merged); i++ {
		inPlace = equality.Semantic.DeepEqual(&spec.InitContainers[i], &merged[i])
	}
	stale := 0
	for _, c := range spec.InitContainers {
		if IsOwnInitContainer(c.Name) {
			stale++
		}
	}
	if inPlace && stale == len(merged) {
		return false
	}
	out := make([]corev1.Container, 0, len(spec.InitContainers)+len(merged))
	out = append(out, merged...)
	for _, c := range spec.InitContainers {
		if !IsOwnInitContainer(c.Name) {
			out = append(out, c)
		}
	}
	spec.InitContainers = out
	return true
}

// initHash identifies rendered init containers: the settings they carry.
// The image of a writer that runs in the target's image is left out: it
// follows the target (keepOthersEdits), which a registry-mirror webhook may
// rewrite along with guardchain's own images. The sum is over the
// containers' protobuf encoding, which the API types generate: every field,
// map keys sorted, without reflection (a JSON encoding cost as much as the
// rest of the mutation).
func initHash(cs []corev1.Container) string {
	h := sha256.New()
	buf := bufpool.Get()
	defer bufpool.Put(buf)
	for i := range cs {
		c := &cs[i]
		if runsInTargetImage(c) {
			cc := *c
			cc.Image, cc.ImagePullPolicy = "", ""
			c = &cc
		}
		n := c.Size()
		buf.Reset()
		buf.Grow(n)
		b := buf.AvailableBuffer()[:n]
		if _, err := c.MarshalToSizedBuffer(b); err != nil {
			panic("encoding a rendered init container: " + err.Error()) // sized above: cannot fail
		}
		// Each container's length first, so no two lists sum alike.
		var l [8]byte
		binary.BigEndian.PutUint64(l[:], uint64(n))
		h.Write(l[:])
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func runsInTargetImage(c *corev1.Container) bool {
	return c.Name == InitContainerName && len(c.Command) > 0 && c.Command[0] == BinPath+"/initguards"
}

// keepOthersEdits is want with what another webhook may change in
// guardchain's containers taken from have: the image and pull policy (a
// registry mirror; not for a writer that runs in the target's image, which
// follows the target), the securityContext and the resources. Never the
// command, args, env, envFrom or mounts: with a forged init hash, those
// would let a pod run its own program as the writer, or name no guard.
func keepOthersEdits(have, want corev1.Container) corev1.Container {
	out := *want.DeepCopy()
	if !runsInTargetImage(&want) {
		out.Image, out.ImagePullPolicy = have.Image, have.ImagePullPolicy
	}
	out.SecurityContext = have.SecurityContext.DeepCopy()
	out.Resources = *have.Resources.DeepCopy()
	return out
}

// WritesChainFirst reports whether the pod's init containers start with
// guardchain's, ending with guardchain-init: the chain is written before any
// other container runs.
func WritesChainFirst(spec *corev1.PodSpec) bool {
	for _, c := range spec.InitContainers {
		if c.Name == InitContainerName {
			return true
		}
		if !IsOwnInitContainer(c.Name) {
			return false
		}
	}
	return false
}

// IsOwnInitContainer reports whether an init container of that name is
// guardchain's (guardchain-bin or guardchain-init).
func IsOwnInitContainer(name string) bool {
	return name == InitContainerName || name == BinContainerName
}

func ownInit(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}
