package webhook

import (
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/guardchain/guardchain/guards"
)

// The emptyDir that becomes /tmp: which volume, and its mount in each target.

// binVolume holds the initguards copy for an image source: a static binary
// of a few MB.
var binVolume = VolumeConfig{SizeLimit: ptr.To(resource.MustParse("16Mi"))}

// KubeletPath is a mount path as the kubelet hands it to the runtime: made
// absolute and cleaned, so "tmp", "/./tmp", "//tmp" and "/tmp/../tmp" are all
// /tmp (and runc mounts a later one on top of an earlier one).
func KubeletPath(p string) string { return path.Clean("/" + p) }

// CleanMountPath reports whether p is already as the kubelet would make it:
// the backstop compares paths as written, so it accepts only these.
func CleanMountPath(p string) bool { return p == KubeletPath(p) }

// uncleanMount names a container of the pod (any kind) with a mount path
// that is not clean and absolute, or "": a volume's, a device's, or a
// target's termination message (the kubelet mounts that file too; termination
// says which).
func uncleanMount(spec *corev1.PodSpec, targets []string) (container, mountPath string, termination bool) {
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			for _, m := range cs[i].VolumeMounts {
				if !CleanMountPath(m.MountPath) {
					return cs[i].Name, m.MountPath, false
				}
			}
			for _, d := range cs[i].VolumeDevices {
				if !CleanMountPath(d.DevicePath) {
					return cs[i].Name, d.DevicePath, false
				}
			}
		}
	}
	for i := range spec.EphemeralContainers {
		for _, m := range spec.EphemeralContainers[i].VolumeMounts {
			if !CleanMountPath(m.MountPath) {
				return spec.EphemeralContainers[i].Name, m.MountPath, false
			}
		}
	}
	for _, t := range targets {
		if p := terminationPath(containerByName(spec, t)); !CleanMountPath(p) {
			return t, p, true
		}
	}
	return "", "", false
}

// sharedChainVolume names a container other than the targets and
// guardchain's own init containers that mounts the chain's volume (even
// read-only: a privileged or CAP_SYS_ADMIN container remounts it
// read-write) or guardchain's binary volume: it could rewrite the chain
// after guardchain-init wrote it, or the binary before it runs. A regular
// container named like one of guardchain's is no exception.
func sharedChainVolume(spec *corev1.PodSpec, volume string, targets []string) (container, name string) {
	check := func(c *corev1.Container, own bool) (string, string) {
		if slices.Contains(targets, c.Name) || own {
			return "", ""
		}
		for _, m := range c.VolumeMounts {
			if m.Name == volume || m.Name == BinVolumeName {
				return c.Name, m.Name
			}
		}
		return "", ""
	}
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		if n, v := check(c, IsOwnInitContainer(c.Name) && c.RestartPolicy == nil); n != "" {
			return n, v
		}
	}
	for i := range spec.Containers {
		if n, v := check(&spec.Containers[i], false); n != "" {
			return n, v
		}
	}
	for i := range spec.EphemeralContainers {
		ec := corev1.Container{Name: spec.EphemeralContainers[i].Name, VolumeMounts: spec.EphemeralContainers[i].VolumeMounts}
		if n, v := check(&ec, false); n != "" {
			return n, v
		}
	}
	return "", ""
}

// tmpVolume picks the emptyDir that becomes /tmp: one the targets already
// mount there, or ours. Anything else at /tmp is refused. from is the target
// whose mount it follows (the first target when none mounts /tmp).
func (in *injection) tmpVolume(targets []string) (volume string, mount corev1.VolumeMount, from string, refused *Result) {
	mount = corev1.VolumeMount{Name: VolumeName, MountPath: TmpPath}
	from = targets[0]
	found := ""
	for _, t := range targets {
		c := containerByName(&in.pod.Spec, t)
		for _, d := range c.VolumeDevices {
			if p := KubeletPath(d.DevicePath); p == TmpPath || strings.HasPrefix(p, TmpPath+"/") {
				r := in.refuse(ReasonChainShadowed, "container %s has device %s at %s, in the guard chain's /tmp", t, d.Name, d.DevicePath)
				return "", mount, from, &r
			}
		}
		if p := KubeletPath(terminationPath(c)); p == TmpPath || strings.HasPrefix(p, TmpPath+"/"+guards.StagedPrefix) {
			r := in.refuse(ReasonChainShadowed, "container %s has its termination message at %s, where the kubelet mounts a file over the guard chain's", t, c.TerminationMessagePath)
			return "", mount, from, &r
		}
		for _, m := range c.VolumeMounts {
			if strings.HasPrefix(KubeletPath(m.MountPath), TmpPath+"/"+guards.StagedPrefix) {
				r := in.refuse(ReasonChainShadowed, "container %s mounts volume %s at %s, over the guard chain's files", t, m.Name, m.MountPath)
				return "", mount, from, &r
			}
			if KubeletPath(m.MountPath) != TmpPath {
				continue
			}
			v := volumeByName(&in.pod.Spec, m.Name)
			if v == nil || v.EmptyDir == nil {
				r := in.refuse(ReasonTmpNotEmptyDir, "container %s mounts %s from volume %s, which is %s, not an emptyDir; the guard chain cannot be written there",
					t, m.MountPath, m.Name, volumeKind(v))
				return "", mount, from, &r
			}
			key := m.Name + "\x00" + m.SubPath + "\x00" + m.SubPathExpr
			if found != "" && found != key {
				r := in.refuse(ReasonTmpVolumesDiffer, "target containers mount different volumes at /tmp; the chain can fill only one")
				return "", mount, from, &r
			}
			if found == "" {
				from = t
			}
			found = key
			mount = corev1.VolumeMount{Name: m.Name, MountPath: TmpPath, SubPath: m.SubPath, SubPathExpr: m.SubPathExpr}
		}
	}
	if found == "" {
		if v := volumeByName(&in.pod.Spec, VolumeName); v != nil && v.EmptyDir == nil {
			r := in.refuse(ReasonVolumeNameTaken, "the pod already has a volume named %s that is %s, not an emptyDir", VolumeName, volumeKind(v))
			return "", mount, from, &r
		}
	}
	return mount.Name, mount, from, nil
}

func volumeByName(spec *corev1.PodSpec, name string) *corev1.Volume {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	return nil
}

// volumeKind names a volume's source for messages.
func volumeKind(v *corev1.Volume) string {
	if v == nil {
		return "not defined in the pod"
	}
	s := v.VolumeSource
	switch {
	case s.HostPath != nil:
		return "a hostPath"
	case s.ConfigMap != nil:
		return "a configMap"
	case s.Secret != nil:
		return "a secret"
	case s.PersistentVolumeClaim != nil:
		return "a persistentVolumeClaim"
	case s.Projected != nil:
		return "a projected volume"
	case s.Ephemeral != nil:
		return "an ephemeral volume"
	case s.DownwardAPI != nil:
		return "a downwardAPI volume"
	case s.Image != nil:
		return "an image volume"
	}
	return "not an emptyDir"
}

// imageVolumes reports whether the writer may take initguards from an
// image volume: always, never, or (auto) where the pod already mounts an
// image volume other than guardchain's, so its node must mount them (the
// node is unknown at admission; this never makes a pod that could start
// stuck).
func (in *injection) imageVolumes() bool {
	switch in.cfg.ImageVolume {
	case ImageVolumeAlways:
		return true
	case ImageVolumeNever:
		return false
	}
	for _, v := range in.pod.Spec.Volumes {
		if v.Image != nil && v.Name != BinVolumeName {
			return true
		}
	}
	return false
}

// ensureBinVolume makes guardchain-bin what the writer takes initguards
// from: the init image as a read-only image volume, or a small emptyDir
// that guardchain-bin copies it into.
func (in *injection) ensureBinVolume(spec *corev1.PodSpec, image bool) bool {
	want := corev1.VolumeSource{}
	if image {
		want.Image = &corev1.ImageVolumeSource{Reference: in.cfg.InitImage, PullPolicy: in.cfg.ImagePullPolicy}
	} else {
		q := binVolume.SizeLimit.DeepCopy()
		want.EmptyDir = &corev1.EmptyDirVolumeSource{SizeLimit: &q}
	}
	if v := volumeByName(spec, BinVolumeName); v != nil {
		if equality.Semantic.DeepEqual(v.VolumeSource, want) {
			return false
		}
		v.VolumeSource = want
		return true
	}
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: BinVolumeName, VolumeSource: want})
	return true
}

// ensureVolume adds our emptyDir, or brings one of that name (ours from an
// earlier call, or from an older release's offline injection) to the
// configured medium and size. An emptyDir the pod mounts at /tmp under
// another name is the pod's own and is never changed.
func ensureVolume(spec *corev1.PodSpec, name string, vc VolumeConfig) bool {
	ed := &corev1.EmptyDirVolumeSource{Medium: vc.Medium}
	if vc.SizeLimit != nil {
		q := vc.SizeLimit.DeepCopy()
		ed.SizeLimit = &q
	}
	if v := volumeByName(spec, name); v != nil {
		if name != VolumeName && name != BinVolumeName || equality.Semantic.DeepEqual(v.EmptyDir, ed) {
			return false
		}
		v.EmptyDir = ed
		return true
	}
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: ed}})
	return true
}

// ensureTmpMount mounts the chain volume at /tmp unless the container already
// mounts something there (which tmpVolume has vetted).
func ensureTmpMount(c *corev1.Container, m corev1.VolumeMount) bool {
	for _, have := range c.VolumeMounts {
		if KubeletPath(have.MountPath) == TmpPath {
			return false
		}
	}
	c.VolumeMounts = append(c.VolumeMounts, m)
	return true
}

// terminationPath is where the kubelet mounts c's termination message file
// (the API server's default when unset).
func terminationPath(c *corev1.Container) string {
	if c.TerminationMessagePath == "" {
		return corev1.TerminationMessagePathDefault
	}
	return c.TerminationMessagePath
}

// fixedContent reports whether only the kubelet writes v's files, with no
// symlink that leads out of it: a configMap, secret, downwardAPI or
// projected volume.
func fixedContent(v *corev1.Volume) bool {
	return v != nil && (v.ConfigMap != nil || v.Secret != nil || v.DownwardAPI != nil || v.Projected != nil)
}

// nestedMount finds in target c (with the chain's volume at /tmp) a mount,
// device or termination message inside /dev/shm, or inside another of its
// mounts whose volume a container can write (any but fixedContent ones,
// the chain's too), paths compared with pathAliases resolved. runc
// follows symlinks when it resolves a mount's destination, through the
// volumes it mounted before (containerd mounts the shallower first), so a
// symlink an earlier container left there moves the inner mount anywhere:
// over /tmp too. Paths are clean here (uncleanMount).
func nestedMount(spec *corev1.PodSpec, c *corev1.Container, chainVolume string) (inner string, outer corev1.VolumeMount) {
	mounts := c.VolumeMounts
	if !slices.ContainsFunc(mounts, func(m corev1.VolumeMount) bool { return m.MountPath == TmpPath }) {
		mounts = append(slices.Clip(mounts), corev1.VolumeMount{Name: chainVolume, MountPath: TmpPath})
	}
	paths := make([]string, 0, len(mounts)+len(c.VolumeDevices)+1)
	for _, m := range mounts {
		paths = append(paths, m.MountPath)
	}
	for _, d := range c.VolumeDevices {
		paths = append(paths, d.DevicePath)
	}
	paths = append(paths, terminationPath(c))
	paths = append(paths, runtimePaths...)
	resolved := make([]string, len(paths))
	for i, p := range paths {
		resolved[i] = unaliased(p)
		if strings.HasPrefix(resolved[i], sharedMemoryPath+"/") {
			return p, corev1.VolumeMount{Name: "the pod's shared memory", MountPath: sharedMemoryPath}
		}
	}
	for _, o := range mounts {
		if fixedContent(volumeByName(spec, o.Name)) {
			continue
		}
		// A volume at / holds everything (runc refuses to mount it, so
		// such a pod would not start anyway).
		prefix, aliasPrefix := strings.TrimSuffix(o.MountPath, "/")+"/", strings.TrimSuffix(unaliased(o.MountPath), "/")+"/"
		for i, p := range paths {
			// As written too: a volume at /var hides the image's
			// /var/run -> /run, so /var/run is inside it.
			if p != o.MountPath && (strings.HasPrefix(p, prefix) || strings.HasPrefix(resolved[i], aliasPrefix)) {
				if slices.Contains(runtimePaths, p) {
					p += " (the runtime's own mount)"
				}
				return p, o
			}
		}
	}
	return "", corev1.VolumeMount{}
}

// pathAliases are the directories every common base image (Debian, Ubuntu,
// Alpine, UBI; merged /usr) ships as symlinks. runc follows them when it
// resolves a mount's destination, so the checks on nested mounts compare
// paths with them resolved. Other symlinks an image ships are the image's
// (guardchain trusts what the image packages).
var pathAliases = [][2]string{{"/var/run", "/run"}, {"/var/lock", "/run/lock"}, {"/bin", "/usr/bin"}, {"/sbin", "/usr/sbin"},
	{"/lib", "/usr/lib"}, {"/lib32", "/usr/lib32"}, {"/lib64", "/usr/lib64"}, {"/libx32", "/usr/libx32"}}

// runtimePaths are where the kubelet, the container runtime and runc mount
// or mask things of their own in every container, named nowhere in the pod:
// /etc/hosts (the kubelet), /etc/hostname, /etc/resolv.conf and /dev/shm
// (containerd), /run/secrets and /run/.containerenv (CRI-O), and the
// masked /sys paths (runc). A target volume around one of them would let a
// symlink there carry that mount onto /tmp.
var runtimePaths = []string{"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/dev/shm", "/run/secrets", "/run/.containerenv",
	"/sys/firmware", "/sys/devices/virtual/powercap"}

// sharedMemoryPath is the pod's shared memory, which the runtime mounts in
// every container: any of them may leave a symlink there.
const sharedMemoryPath = "/dev/shm"

// unaliased is p with the first of pathAliases it starts with resolved.
func unaliased(p string) string {
	for _, a := range pathAliases {
		if strings.HasPrefix(p, a[0]) && (len(p) == len(a[0]) || p[len(a[0])] == '/') {
			return a[1] + p[len(a[0]):]
		}
	}
	return p
}
