package webhook

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/guardchain/guardchain/guards"
	"github.com/guardchain/guardchain/initguards"
	"github.com/guardchain/guardchain/internal/version"
)

// Names Inject adds or looks for. Users see them in pod specs; they are API.
const (
	VolumeName        = "guardchain-tmp"
	InitContainerName = "guardchain-init"
	TmpPath           = "/tmp"
	// With an image source, guardchain-bin copies initguards into the
	// emptyDir guardchain-bin, mounted at BinPath, for guardchain-init.
	BinContainerName = "guardchain-bin"
	BinVolumeName    = "guardchain-bin"
	BinPath          = "/guardchain"

	annotationPrefix  = "guardchain.dev/"
	AnnotationStatus  = annotationPrefix + "status"
	AnnotationChain   = annotationPrefix + "chain"
	AnnotationVersion = annotationPrefix + "version"
	// AnnotationChainSource records the source the pod was injected with
	// (the override annotation AnnotationSource is the pod's request).
	AnnotationChainSource = annotationPrefix + "chain-source"
	// AnnotationInitHash identifies the init containers guardchain rendered
	// for the pod, so a reinvocation can tell other webhooks' edits (kept)
	// from a change of settings, target image or release (rendered anew).
	AnnotationInitHash = annotationPrefix + "init-hash"
	// AnnotationOwner records who owns the chain's files and where that came
	// from ("uid:1000:1000 (env OPENSHELL_SANDBOX_UID of container agent)").
	AnnotationOwner      = annotationPrefix + "owner"
	AnnotationContainers = annotationPrefix + string(OverrideContainers)
	AnnotationProxyHost  = annotationPrefix + string(OverrideProxyHost)
	AnnotationProxyPort  = annotationPrefix + string(OverrideProxyPort)
	AnnotationOwnership  = annotationPrefix + string(OverrideOwnership)
	AnnotationRequire    = annotationPrefix + string(OverrideRequire)
	AnnotationSource     = annotationPrefix + string(OverrideSource)
	AnnotationWriter     = annotationPrefix + string(OverrideWriter)

	// StatusInjected is the status annotation's value on an injected pod.
	StatusInjected = "injected"
)

// chain is the embedded guard chain; read-only.
var chain = guards.Default()

// Inject is the one mutation: it returns pod with an emptyDir at /tmp in every
// target container and the guardchain-init container first, which writes the
// guard chain there before any container starts. It never changes its input;
// each item is added only if missing, so Inject(Inject(p)) == Inject(p).
func Inject(pod *corev1.Pod, cfg Config) Result {
	in := &injection{cfg: cfg, pod: pod, copy: deepCopy}
	return in.run()
}

// injectForPatch is Inject for a caller that only reads the result (the
// handler, which turns it into a patch): the mutated pod shares with the
// input everything Inject does not change (copyForPatch), instead of
// being a deep copy of a pod that may carry large managed fields, volumes
// and containers Inject never touches.
func injectForPatch(pod *corev1.Pod, cfg Config) Result {
	in := &injection{cfg: cfg, pod: pod, copy: copyForPatch}
	return in.run()
}

// injection carries one Inject call's state.
type injection struct {
	cfg   Config
	pod   *corev1.Pod
	notes []Note
	// copy gives the pod that Inject's steps change, leaving pod as it is.
	copy func(pod *corev1.Pod, targets []string) *corev1.Pod
}

func deepCopy(pod *corev1.Pod, _ []string) *corev1.Pod { return pod.DeepCopy() }

// copyForPatch copies of pod what Inject's steps change and shares the
// rest: the annotations (ensureAnnotations), the volumes (ensureVolume and
// ensureBinVolume replace an item's source, or append), the containers and
// init containers lists, and each target's mounts and env (ensureTmpMount
// appends, ensureNodeOptions sets a value or appends). The init containers
// list is replaced whole where it changes (ensureInitContainersFirst).
func copyForPatch(pod *corev1.Pod, targets []string) *corev1.Pod {
	out := *pod
	out.Annotations = maps.Clone(pod.Annotations)
	spec := &out.Spec
	spec.Volumes = slices.Clone(pod.Spec.Volumes)
	spec.Containers = slices.Clone(pod.Spec.Containers)
	spec.InitContainers = slices.Clone(pod.Spec.InitContainers)
	for _, t := range targets {
		c := containerByName(spec, t)
		c.VolumeMounts = slices.Clone(c.VolumeMounts)
		c.Env = slices.Clone(c.Env)
	}
	return &out
}

func (in *injection) note(r Reason, format string, args ...any) {
	in.notes = append(in.notes, Note{Reason: r, Message: fmt.Sprintf(format, args...)})
}

func (in *injection) stop(o Outcome, r Reason) Result {
	return Result{Pod: in.pod, Outcome: o, Reason: r, Notes: in.notes}
}

// refuse ends a pod whose /tmp cannot be taken over, as config says.
func (in *injection) refuse(r Reason, format string, args ...any) Result {
	in.note(r, format, args...)
	if in.cfg.Conflict == ConflictSkip {
		return in.stop(OutcomeSkipped, r)
	}
	return in.stop(OutcomeDenied, r)
}

// podSettings are the config values after per-pod annotations.
type podSettings struct {
	containers []string
	// named are the targets the pod's annotation names (beside config's).
	named     []string
	opts      guards.Options
	ownership string
	// ownershipFrom says where ownership came from: config, the pod's
	// annotation, or (for auto) what resolveOwnership read.
	ownershipFrom string
	policy        initguards.Policy
	writer        WriterMode
	source        SourceMode
	// imageVolume: the writer runs initguards from an image volume of the
	// init image, not from guardchain-bin's copy.
	imageVolume bool
}

func (in *injection) run() Result {
	if why := WindowsOnly(&in.pod.Spec); why != "" {
		in.note(ReasonWindowsPod, "pod %s runs only on Windows nodes (%s); the guard chain is for Linux containers", podName(in.pod), why)
		return in.stop(OutcomeSkipped, ReasonWindowsPod)
	}
	set, bad := in.settings()
	if bad != nil {
		return in.stop(OutcomeDenied, ReasonBadAnnotation)
	}
	targets := in.targets(set)
	if len(targets) == 0 {
		in.note(ReasonNoTargetContainer, "pod %s has no container named %s; left untouched", podName(in.pod), strings.Join(set.containers, " or "))
		return in.stop(OutcomeSkipped, ReasonNoTargetContainer)
	}

	// The kubelet cleans mount paths before the runtime mounts them; the
	// backstop compares them as written, so only clean ones are taken.
	if c, p, termination := uncleanMount(&in.pod.Spec, targets); termination {
		return in.refuse(ReasonMountPathNotClean, "container %s writes its termination message at %q, which the kubelet mounts at %q; write it clean and absolute",
			c, p, KubeletPath(p))
	} else if c != "" {
		return in.refuse(ReasonMountPathNotClean, "container %s mounts a volume at %q, which the kubelet reads as %q; write mount paths clean and absolute",
			c, p, KubeletPath(p))
	}
	volume, mount, from, res := in.tmpVolume(targets)
	if res != nil {
		return *res
	}
	for _, t := range targets {
		if inner, outer := nestedMount(&in.pod.Spec, containerByName(&in.pod.Spec, t), volume); inner != "" {
			return in.refuse(ReasonMountNested, "container %s mounts %s inside volume %s at %s, whose files a container can write: runc follows a symlink there "+
				"(onto /tmp too); mount it elsewhere, or inside a configMap, secret, downwardAPI or projected volume only", t, inner, outer.Name, outer.MountPath)
		}
	}
	for _, c := range in.pod.Spec.Containers {
		if IsOwnInitContainer(c.Name) {
			return in.refuse(ReasonContainerNameTaken, "the pod has a container named %s, as guardchain names its init containers", c.Name)
		}
	}
	if c, v := sharedChainVolume(&in.pod.Spec, volume, targets); c != "" {
		return in.refuse(ReasonChainVolumeShared, "container %s, which is not a target, mounts volume %s, which holds the guard chain (read-only too: a privileged container remounts it); it could rewrite it", c, v)
	}
	if res := in.checkSubPathExpr(mount, containerByName(&in.pod.Spec, from), targets); res != nil {
		return *res
	}
	// The owner is who runs the entrypoint in the target whose /tmp the
	// chain fills.
	set.ownership, set.ownershipFrom = resolveOwnership(set.ownership, set.ownershipFrom, &in.pod.Spec, containerByName(&in.pod.Spec, from))
	set.policy, _ = initguards.ParseOwnership(set.ownership)
	if c, uid := sameUserInSharedPIDs(&in.pod.Spec, targets, set.policy); c != "" {
		return in.refuse(ReasonProcessNamespace, "the pod shares its process namespace and container %s runs as %s: through /proc/<pid>/root it could rewrite the guard chain; "+
			"give it a runAsUser of its own (or root)", c, uid)
	}
	if set.source != SourceEmbedded {
		if v := volumeByName(&in.pod.Spec, BinVolumeName); v != nil && v.EmptyDir == nil && v.Image == nil {
			return in.refuse(ReasonVolumeNameTaken, "the pod already has a volume named %s that is %s, not an emptyDir or image volume", BinVolumeName, volumeKind(v))
		}
	}
	// An image source runs initguards from an image volume of the init
	// image where that is safe (one init container), else from a copy.
	set.imageVolume = set.source != SourceEmbedded && in.imageVolumes()

	out := in.copy(in.pod, targets)
	spec := &out.Spec
	// Each step reports whether it changed anything; none did means the pod
	// already carried everything (a reinvocation, or a pod injected before).
	changed := ensureVolume(spec, volume, in.cfg.Volume)
	for _, t := range targets {
		c := containerByName(spec, t)
		changed = ensureTmpMount(c, mount) || changed
		if in.cfg.NodeOptions == NodeOptionsAppend {
			changed = in.ensureNodeOptions(c, set) || changed
		}
	}
	if set.source != SourceEmbedded {
		changed = in.ensureBinVolume(spec, set.imageVolume) || changed
	}
	// The image source reads the first target's image, as the pod names it.
	// From the pod as mutated so far: a subPathExpr expands with the
	// target's env as it will run (NODE_OPTIONS appended included).
	inits := in.initContainers(set, containerByName(spec, from), mount, guaranteed(in.pod))
	hash := initHash(inits)
	changed = ensureInitContainersFirst(spec, inits, in.pod.Annotations[AnnotationInitHash] != hash) || changed
	changed = ensureAnnotations(&out.ObjectMeta, [][2]string{
		{AnnotationStatus, StatusInjected},
		{AnnotationChain, guards.DefaultSHA256()},
		{AnnotationChainSource, string(set.source)},
		{AnnotationOwner, set.ownership + " (" + set.ownershipFrom + ")"},
		{AnnotationInitHash, hash},
		{AnnotationVersion, version.Version},
	}) || changed
	if !changed {
		return in.stop(OutcomeUnchanged, ReasonNone)
	}
	return Result{Pod: out, Outcome: OutcomeInjected, Notes: in.notes}
}

// settings applies the pod's override annotations that config allows. A bad
// value is an error, never silently ignored: the pod asked for something.
func (in *injection) settings() (podSettings, error) {
	cfg := in.cfg
	set := podSettings{containers: cfg.Containers, opts: cfg.guardOptions(), ownership: cfg.Ownership, ownershipFrom: "config",
		writer: cfg.Writer, source: cfg.Source}
	ann := in.pod.Annotations
	var firstErr error
	fail := func(key, format string, args ...any) {
		in.note(ReasonBadAnnotation, "annotation %s: %s", key, fmt.Sprintf(format, args...))
		if firstErr == nil {
			firstErr = fmt.Errorf("%s", key)
		}
	}
	for _, ov := range allOverrides {
		key := annotationPrefix + string(ov)
		v, ok := ann[key]
		if !ok {
			continue
		}
		if !cfg.allows(ov) {
			in.note(ReasonOverrideForbidden, "annotation %s is not allowed by the webhook's configuration; ignored", key)
			continue
		}
		switch ov {
		case OverrideContainers:
			// The annotation adds targets; it never removes config's, or a pod
			// could opt out of the chain by naming something else.
			names := splitList(v)
			if len(names) == 0 {
				fail(key, "names no container")
			}
			set.named = names
			for _, n := range names {
				if !slices.Contains(set.containers, n) {
					set.containers = append(slices.Clone(set.containers), n)
				}
			}
		case OverrideProxyHost:
			if err := guards.ValidateHost(v); err != nil {
				fail(key, "%v", err)
			}
			set.opts.ProxyHost = v
		case OverrideProxyPort:
			p, err := strconv.Atoi(v)
			if err == nil {
				err = guards.ValidatePort(p)
			} else {
				err = fmt.Errorf("%q is not a port number", v)
			}
			if err != nil {
				fail(key, "%v", err)
			}
			set.opts.ProxyPort = p
		case OverrideOwnership:
			if err := validateOwnership(v); err != nil {
				fail(key, "%v", err)
			}
			set.ownership, set.ownershipFrom = v, "annotation "+key
		case OverrideRequire:
			ids := splitList(v)
			if v == "none" {
				ids = nil
			}
			if err := chain.ValidateRequired(ids); err != nil {
				fail(key, "%v", err)
			}
			set.opts.Required = ids
		case OverrideSource:
			if err := SourceMode(v).validate(); err != nil {
				fail(key, "%v", err)
			}
			set.source = SourceMode(v)
		case OverrideWriter:
			if err := WriterMode(v).validate(); err != nil {
				fail(key, "%v", err)
			}
			set.writer = WriterMode(v)
		}
	}
	if set.writer == WriterAuto {
		set.writer = WriterRoot
		if runsNonRoot(&in.pod.Spec) {
			set.writer = WriterOwner
		}
	}
	return set, firstErr
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// targets are the named containers the pod has: regular containers and
// native sidecars (restartable init containers), in the pod's order.
func (in *injection) targets(set podSettings) []string {
	var out []string
	for _, n := range set.containers {
		if c := containerByName(&in.pod.Spec, n); c != nil && c.Name != InitContainerName {
			out = append(out, n)
		} else if slices.Contains(set.named, n) {
			in.note(ReasonUnknownContainer, "annotation %s names %q, which is neither a container nor a native sidecar of the pod", AnnotationContainers, n)
		}
	}
	return out
}

func containerByName(spec *corev1.PodSpec, name string) *corev1.Container {
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			return &spec.Containers[i]
		}
	}
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		if c.Name == name && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			return c
		}
	}
	return nil
}

func ensureAnnotations(meta *metav1.ObjectMeta, want [][2]string) bool {
	changed := false
	for _, kv := range want {
		if v, ok := meta.Annotations[kv[0]]; ok && v == kv[1] {
			continue
		}
		if meta.Annotations == nil {
			meta.Annotations = make(map[string]string, len(want))
		}
		meta.Annotations[kv[0]] = kv[1]
		changed = true
	}
	return changed
}

func podName(p *corev1.Pod) string {
	name := p.Name
	if name == "" && p.GenerateName != "" {
		name = p.GenerateName + "*"
	}
	if p.Namespace != "" {
		return p.Namespace + "/" + name
	}
	return name
}
