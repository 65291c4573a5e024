package webhook

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/guardchain/guardchain/guards"
	"github.com/guardchain/guardchain/initguards"
	"github.com/guardchain/guardchain/internal/version"
)

// Names Inject adds or looks for. Users see them in pod specs; they are API.
const (
	VolumeName        = "guardchain-tmp"
	InitContainerName = "guardchain-init"
	TmpPath           = "/tmp"

	annotationPrefix     = "guardchain.dev/"
	AnnotationStatus     = annotationPrefix + "status"
	AnnotationChain      = annotationPrefix + "chain"
	AnnotationVersion    = annotationPrefix + "version"
	AnnotationContainers = annotationPrefix + string(OverrideContainers)
	AnnotationProxyHost  = annotationPrefix + string(OverrideProxyHost)
	AnnotationProxyPort  = annotationPrefix + string(OverrideProxyPort)
	AnnotationOwnership  = annotationPrefix + string(OverrideOwnership)
	AnnotationRequire    = annotationPrefix + string(OverrideRequire)

	// StatusInjected is the status annotation's value on an injected pod.
	StatusInjected = "injected"
)

// chain is the embedded guard chain; read-only.
var chain = guards.Default()

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
	ReasonNone              Reason = ""
	ReasonNoTargetContainer Reason = "no-target-container"
	ReasonWindowsPod        Reason = "windows-pod"
	ReasonTmpNotEmptyDir    Reason = "tmp-volume-not-emptydir"
	ReasonTmpVolumesDiffer  Reason = "tmp-volumes-differ"
	ReasonVolumeNameTaken   Reason = "volume-name-taken"
	ReasonBadAnnotation     Reason = "bad-annotation"
	ReasonOverrideForbidden Reason = "override-not-allowed"
	ReasonUnknownContainer  Reason = "unknown-container"
	ReasonNodeOptionsFrom   Reason = "node-options-from-source"
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

// Inject is the one mutation: it returns pod with an emptyDir at /tmp in every
// target container and the guardchain-init container first, which writes the
// guard chain there before any container starts. It never changes its input;
// each item is added only if missing, so Inject(Inject(p)) == Inject(p).
func Inject(pod *corev1.Pod, cfg Config) Result {
	in := &injection{cfg: cfg, pod: pod}
	return in.run()
}

// injection carries one Inject call's state.
type injection struct {
	cfg   Config
	pod   *corev1.Pod
	notes []Note
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
	opts       guards.Options
	ownership  string
	policy     initguards.Policy
}

func (in *injection) run() Result {
	if why := windowsOnly(&in.pod.Spec); why != "" {
		in.note(ReasonWindowsPod, "pod %s runs only on Windows nodes (%s); the guard chain is for Linux containers", podName(in.pod), why)
		return in.stop(OutcomeSkipped, ReasonWindowsPod)
	}
	set, bad := in.settings()
	if bad != nil {
		return in.stop(OutcomeDenied, ReasonBadAnnotation)
	}
	targets := in.targets(set.containers)
	if len(targets) == 0 {
		in.note(ReasonNoTargetContainer, "pod %s has no container named %s; left untouched", podName(in.pod), strings.Join(set.containers, " or "))
		return in.stop(OutcomeSkipped, ReasonNoTargetContainer)
	}

	volume, mount, res := in.tmpVolume(targets)
	if res != nil {
		return *res
	}

	out := in.pod.DeepCopy()
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
	changed = ensureInitContainerFirst(spec, in.initContainer(set, mount, guaranteed(in.pod))) || changed
	changed = ensureAnnotations(&out.ObjectMeta, [][2]string{
		{AnnotationStatus, StatusInjected},
		{AnnotationChain, guards.DefaultSHA256()},
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
	set := podSettings{containers: cfg.Containers, opts: cfg.guardOptions(), ownership: cfg.Ownership}
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
			names := splitList(v)
			if len(names) == 0 {
				fail(key, "names no container")
			}
			set.containers = names
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
			if _, err := initguards.ParseOwnership(v); err != nil {
				fail(key, "%v", err)
			}
			set.ownership = v
		case OverrideRequire:
			ids := splitList(v)
			if v == "none" {
				ids = nil
			}
			if err := chain.ValidateRequired(ids); err != nil {
				fail(key, "%v", err)
			}
			set.opts.Required = ids
		}
	}
	set.policy, _ = initguards.ParseOwnership(set.ownership)
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
func (in *injection) targets(names []string) []string {
	var out []string
	for _, n := range names {
		if c := containerByName(&in.pod.Spec, n); c != nil && c.Name != InitContainerName {
			out = append(out, n)
		} else if in.pod.Annotations[AnnotationContainers] != "" {
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

// tmpVolume picks the emptyDir that becomes /tmp: one the targets already
// mount there, or ours. Anything else at /tmp is refused.
func (in *injection) tmpVolume(targets []string) (string, corev1.VolumeMount, *Result) {
	mount := corev1.VolumeMount{Name: VolumeName, MountPath: TmpPath}
	found := ""
	for _, t := range targets {
		c := containerByName(&in.pod.Spec, t)
		for _, m := range c.VolumeMounts {
			if path.Clean(m.MountPath) != TmpPath {
				continue
			}
			v := volumeByName(&in.pod.Spec, m.Name)
			if v == nil || v.EmptyDir == nil {
				r := in.refuse(ReasonTmpNotEmptyDir, "container %s mounts %s from volume %s, which is %s, not an emptyDir; the guard chain cannot be written there",
					t, m.MountPath, m.Name, volumeKind(v))
				return "", mount, &r
			}
			if found != "" && found != m.Name+"\x00"+m.SubPath {
				r := in.refuse(ReasonTmpVolumesDiffer, "target containers mount different volumes at /tmp; the chain can fill only one")
				return "", mount, &r
			}
			found = m.Name + "\x00" + m.SubPath
			mount = corev1.VolumeMount{Name: m.Name, MountPath: TmpPath, SubPath: m.SubPath}
		}
	}
	if found == "" {
		if v := volumeByName(&in.pod.Spec, VolumeName); v != nil && v.EmptyDir == nil {
			r := in.refuse(ReasonVolumeNameTaken, "the pod already has a volume named %s that is %s, not an emptyDir", VolumeName, volumeKind(v))
			return "", mount, &r
		}
	}
	return mount.Name, mount, nil
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

// ensureVolume adds our emptyDir unless a volume of that name exists (an
// emptyDir the pod already mounts at /tmp, or ours from an earlier call).
func ensureVolume(spec *corev1.PodSpec, name string, vc VolumeConfig) bool {
	if volumeByName(spec, name) != nil {
		return false
	}
	ed := &corev1.EmptyDirVolumeSource{Medium: vc.Medium}
	if vc.SizeLimit != nil {
		q := vc.SizeLimit.DeepCopy()
		ed.SizeLimit = &q
	}
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: ed}})
	return true
}

// ensureTmpMount mounts the chain volume at /tmp unless the container already
// mounts something there (which tmpVolume has vetted).
func ensureTmpMount(c *corev1.Container, m corev1.VolumeMount) bool {
	for _, have := range c.VolumeMounts {
		if path.Clean(have.MountPath) == TmpPath {
			return false
		}
	}
	c.VolumeMounts = append(c.VolumeMounts, m)
	return true
}

// ensureNodeOptions appends the required --require tokens to a literal
// NODE_OPTIONS. A value from a source (valueFrom, envFrom) is never silently
// overridden: it is left alone with a warning.
func (in *injection) ensureNodeOptions(c *corev1.Container, set podSettings) bool {
	idx := -1
	for i, e := range c.Env {
		if e.Name == "NODE_OPTIONS" {
			idx = i
		}
	}
	if idx >= 0 && c.Env[idx].ValueFrom != nil {
		in.note(ReasonNodeOptionsFrom, "container %s takes NODE_OPTIONS from valueFrom; left as is, so only proxy-env.sh names the guards", c.Name)
		return false
	}
	if idx < 0 && len(c.EnvFrom) > 0 {
		in.note(ReasonNodeOptionsFrom, "container %s has envFrom, which may set NODE_OPTIONS; not overridden, so only proxy-env.sh names the guards", c.Name)
		return false
	}
	value := ""
	if idx >= 0 {
		value = c.Env[idx].Value
	}
	tokens := strings.Fields(value)
	required := map[string]bool{}
	for _, id := range set.opts.Required {
		required[id] = true
	}
	for _, g := range chain.Guards {
		if !required[g.ID] || (g.OnlyIfEnv != "" && literalEnv(c, g.OnlyIfEnv) != g.OnlyIfValue) {
			continue
		}
		file := path.Join(TmpPath, g.Name)
		if !hasRequire(tokens, file) {
			tokens = append(tokens, "--require", file)
		}
	}
	joined := strings.Join(tokens, " ")
	if idx >= 0 {
		if strings.Join(strings.Fields(value), " ") == joined {
			return false
		}
		c.Env[idx].Value = joined
		return true
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: "NODE_OPTIONS", Value: joined})
	return true
}

func literalEnv(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom == nil {
			return e.Value
		}
	}
	return ""
}

// hasRequire matches exact tokens in any of Node's forms, never substrings.
func hasRequire(tokens []string, file string) bool {
	for i, t := range tokens {
		if t == "--require="+file || ((t == "--require" || t == "-r") && i+1 < len(tokens) && tokens[i+1] == file) {
			return true
		}
	}
	return false
}

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
