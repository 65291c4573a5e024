// Package webhook is guardchain's mutating admission webhook: the one pure
// mutation (Inject), the admission Handler that answers with a JSON patch, and
// the server that serves it.
package webhook

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/guardchain/guardchain/guards"
	"github.com/guardchain/guardchain/internal/version"
)

// NodeOptionsMode says whether Inject edits NODE_OPTIONS on target containers.
type NodeOptionsMode string

// ConflictMode says what happens to a pod whose /tmp cannot be taken over.
type ConflictMode string

// WriterMode says who runs the init container that writes the chain.
type WriterMode string

// SourceMode says where the staged guards come from.
type SourceMode string

// ImageVolumeMode says how an image source hands initguards to the writer.
type ImageVolumeMode string

const (
	// NodeOptionsOff leaves NODE_OPTIONS to proxy-env.sh (the default).
	NodeOptionsOff NodeOptionsMode = "off"
	// NodeOptionsAppend appends the required --require tokens to a literal value.
	NodeOptionsAppend NodeOptionsMode = "append"

	// ConflictDeny refuses the pod: an unguarded gateway is worse than none.
	ConflictDeny ConflictMode = "deny"
	// ConflictSkip admits the pod untouched, with a warning.
	ConflictSkip ConflictMode = "skip"

	// WriterAuto picks owner for a pod that asks to run as non-root
	// (runAsNonRoot, as the restricted Pod Security Standard requires), root
	// for any other.
	WriterAuto WriterMode = "auto"
	// WriterRoot runs the writer as uid 0 holding only CHOWN and FOWNER
	// (none for ownership root): it makes /tmp 1777 and gives the files to
	// their owner. Passes the baseline Pod Security level.
	WriterRoot WriterMode = "root"
	// WriterOwner runs the writer as the owning uid with no capability:
	// passes restricted, but /tmp stays the kubelet's 0777, not sticky.
	WriterOwner WriterMode = "owner"

	// SourceEmbedded stages the chain built into initguards.
	SourceEmbedded SourceMode = "embedded"
	// SourceImage stages the preloads packaged in the target container's
	// image; the pod fails to start if the image has none.
	SourceImage SourceMode = "image"
	// SourceAuto stages the image's preloads where the image packages them,
	// the embedded chain otherwise; the init container says which.
	SourceAuto SourceMode = "auto"

	// ImageVolumeAuto mounts the init image as an image volume where the
	// pod already mounts one (as OpenShell's pods mount their supervisor):
	// its node can, or the pod would not start anyway. Elsewhere, the copy.
	ImageVolumeAuto ImageVolumeMode = "auto"
	// ImageVolumeAlways mounts it for every pod: for clusters whose nodes
	// all mount image volumes (Kubernetes 1.35+ with containerd 2.1+ or
	// CRI-O 1.31+).
	ImageVolumeAlways ImageVolumeMode = "always"
	// ImageVolumeNever copies it with guardchain-bin, for every pod.
	ImageVolumeNever ImageVolumeMode = "never"
)

// Override names a pod annotation that config may let pods use.
type Override string

// The per-pod overrides; each is an annotation guardchain.dev/<name>.
const (
	OverrideContainers Override = "containers"
	OverrideProxyHost  Override = "proxy-host"
	OverrideProxyPort  Override = "proxy-port"
	OverrideOwnership  Override = "ownership"
	OverrideRequire    Override = "require"
	OverrideSource     Override = "source"
	OverrideWriter     Override = "writer"
)

var allOverrides = []Override{OverrideContainers, OverrideProxyHost, OverrideProxyPort, OverrideOwnership, OverrideRequire, OverrideSource, OverrideWriter}

// VolumeConfig shapes the emptyDir that becomes /tmp.
type VolumeConfig struct {
	Medium    corev1.StorageMedium `json:"medium,omitempty"`
	SizeLimit *resource.Quantity   `json:"sizeLimit,omitempty"`
}

// ProxyConfig is the sandbox proxy that proxy-env.sh points at.
type ProxyConfig struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

// Config is the webhook's whole configuration: one struct, defaults from
// Default, and Validate naming the bad field.
type Config struct {
	// InitImage runs initguards; pin it by digest in production.
	InitImage       string                      `json:"initImage"`
	ImagePullPolicy corev1.PullPolicy           `json:"imagePullPolicy"`
	Resources       corev1.ResourceRequirements `json:"resources"`
	// Ownership is who owns the chain's files: auto (the user that runs the
	// entrypoint, read from the pod: resolveOwnership), root or uid:N[:G].
	Ownership string `json:"ownership"`
	// Writer is who writes the chain: root (uid 0, CHOWN and FOWNER only),
	// owner (the owning uid, for restricted namespaces) or auto (owner for a
	// pod that runs as non-root, root otherwise).
	Writer WriterMode `json:"writer"`
	// Source is where the guards come from: embedded, image or auto.
	Source SourceMode `json:"source"`
	// PreloadsDir is where images package their preloads.
	PreloadsDir string `json:"preloadsDir"`
	// ImageVolume is how an image source hands initguards to the writer:
	// an image volume of the init image (one init container, one relist
	// less) or a copy by guardchain-bin into an emptyDir.
	ImageVolume ImageVolumeMode `json:"imageVolume"`
	Volume      VolumeConfig    `json:"volume"`
	// Containers are the target container names.
	Containers  []string        `json:"containers"`
	NodeOptions NodeOptionsMode `json:"nodeOptions"`
	Conflict    ConflictMode    `json:"conflict"`
	Proxy       ProxyConfig     `json:"proxy"`
	// RequiredGuards are guard IDs named in NODE_OPTIONS.
	RequiredGuards []string `json:"requiredGuards"`
	GitSSLCAInfo   string   `json:"gitSSLCAInfo,omitempty"`
	// CacheRedirects: "all", "none" or a comma-separated list of variables.
	CacheRedirects string `json:"cacheRedirects"`
	// AllowedOverrides are the pod annotations that may change the above per pod.
	AllowedOverrides []Override `json:"allowedOverrides"`
	// NamespaceOptOutLabel, when set, is a namespace label key whose value
	// "disabled" opts a namespace out (applied by the webhook configuration's
	// namespaceSelector). Empty: no namespace can opt out.
	NamespaceOptOutLabel string `json:"namespaceOptOutLabel,omitempty"`
}

// DefaultInitImage is the init image of this release.
func DefaultInitImage() string { return "ghcr.io/guardchain/initguards:" + version.Version }

// Default returns the configuration for OpenShell sandboxes running stock
// NemoClaw images: their entrypoint, as the sandbox user 998 or as root,
// replaces every guard with the image's own, so the chain is that user's and
// comes from the image where it packages one. /tmp has no size limit, as the
// writable layer it replaces had none: tool caches live there.
func Default() Config {
	return Config{
		InitImage:       DefaultInitImage(),
		ImagePullPolicy: corev1.PullIfNotPresent,
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:              resource.MustParse("10m"),
				corev1.ResourceMemory:           resource.MustParse("16Mi"),
				corev1.ResourceEphemeralStorage: resource.MustParse("1Mi"),
			},
			// No ephemeral-storage limit: where the pod's containers set
			// none, the kubelet takes an init container's as the whole pod's
			// and evicts the sandbox once /tmp (an emptyDir) passes it.
			Limits: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("100m"),
				corev1.ResourceMemory: resource.MustParse("32Mi"),
			},
		},
		Ownership:      OwnershipAuto,
		Writer:         WriterAuto,
		Source:         SourceAuto,
		PreloadsDir:    guards.PackagedDir,
		ImageVolume:    ImageVolumeAuto,
		Containers:     []string{"agent"},
		NodeOptions:    NodeOptionsOff,
		Conflict:       ConflictDeny,
		Proxy:          ProxyConfig{Host: guards.DefaultProxyHost, Port: guards.DefaultProxyPort},
		RequiredGuards: guards.Default().DefaultRequired(),
		CacheRedirects: "all",
		// A pod may ask for a source; not add targets (a target writes the
		// chain's volume, so another container as root could rewrite it),
		// move its proxy (where its egress goes) or choose who owns the
		// chain (ownership auto already follows who runs the entrypoint):
		// those are the operator's, who may allow them per cluster.
		AllowedOverrides: []Override{OverrideSource},
	}
}

// LoadConfig reads a YAML file over the defaults: fields it omits keep their
// default, unknown fields are an error (a typo must not silently do nothing).
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading config: %w", err)
	}
	return ParseConfig(b)
}

// ParseConfig is LoadConfig for bytes.
func ParseConfig(b []byte) (Config, error) {
	cfg := Default()
	js, err := yaml.YAMLToJSON(b)
	if err != nil {
		return Config{}, fmt.Errorf("parsing config: %s", strings.ReplaceAll(err.Error(), "\n", " "))
	}
	// Case-sensitive and strict: "initimage" is a typo, not initImage.
	strict, err := kjson.UnmarshalStrict(js, &cfg, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err == nil && len(strict) > 0 {
		err = strict[0]
	}
	if err != nil {
		return Config{}, fmt.Errorf("parsing config: %s", strings.ReplaceAll(err.Error(), "\n", " "))
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate checks every field and names the first bad one.
func (c Config) Validate() error {
	field := func(name string, err error) error { return fmt.Errorf("config %s: %w", name, err) }
	if c.InitImage == "" || strings.ContainsAny(c.InitImage, " \t\n") {
		return field("initImage", fmt.Errorf("%q is not an image reference", c.InitImage))
	}
	switch c.ImagePullPolicy {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		return field("imagePullPolicy", fmt.Errorf("%q: want Always, IfNotPresent or Never", c.ImagePullPolicy))
	}
	for name, q := range c.Resources.Requests {
		if l, ok := c.Resources.Limits[name]; ok && q.Cmp(l) > 0 {
			return field("resources", fmt.Errorf("request %s %s exceeds limit %s", name, q.String(), l.String()))
		}
	}
	if err := validateOwnership(c.Ownership); err != nil {
		return field("ownership", err)
	}
	if err := c.Writer.validate(); err != nil {
		return field("writer", err)
	}
	if err := c.Source.validate(); err != nil {
		return field("source", err)
	}
	switch c.ImageVolume {
	case ImageVolumeAuto, ImageVolumeAlways, ImageVolumeNever:
	default:
		return field("imageVolume", fmt.Errorf("%q: want auto, always or never", c.ImageVolume))
	}
	if err := guards.ValidateDir(c.PreloadsDir); err != nil || c.PreloadsDir == "/" {
		return field("preloadsDir", fmt.Errorf("%q: want a clean absolute path", c.PreloadsDir))
	}
	switch c.Volume.Medium {
	case corev1.StorageMediumDefault, corev1.StorageMediumMemory:
	default:
		return field("volume.medium", fmt.Errorf("%q: want \"\" or Memory", c.Volume.Medium))
	}
	if c.Volume.SizeLimit != nil && c.Volume.SizeLimit.Sign() <= 0 {
		return field("volume.sizeLimit", errors.New("must be positive"))
	}
	if len(c.Containers) == 0 {
		return field("containers", errors.New("names no container"))
	}
	for _, n := range c.Containers {
		if errs := validation.IsDNS1123Label(n); len(errs) > 0 {
			return field("containers", fmt.Errorf("%q: %s", n, errs[0]))
		}
	}
	switch c.NodeOptions {
	case NodeOptionsOff, NodeOptionsAppend:
	default:
		return field("nodeOptions", fmt.Errorf("%q: want off or append", c.NodeOptions))
	}
	switch c.Conflict {
	case ConflictDeny, ConflictSkip:
	default:
		return field("conflict", fmt.Errorf("%q: want deny or skip", c.Conflict))
	}
	if err := guards.ValidateHost(c.Proxy.Host); err != nil {
		return field("proxy.host", err)
	}
	if err := guards.ValidatePort(c.Proxy.Port); err != nil {
		return field("proxy.port", err)
	}
	chain := guards.Default()
	if err := chain.ValidateRequired(c.RequiredGuards); err != nil {
		return field("requiredGuards", err)
	}
	o := c.guardOptions()
	if err := chain.Validate(o); err != nil {
		return field("gitSSLCAInfo/cacheRedirects", err)
	}
	for _, ov := range c.AllowedOverrides {
		if !slices.Contains(allOverrides, ov) {
			return field("allowedOverrides", fmt.Errorf("unknown override %q", ov))
		}
	}
	if c.NamespaceOptOutLabel != "" {
		if errs := validation.IsQualifiedName(c.NamespaceOptOutLabel); len(errs) > 0 {
			return field("namespaceOptOutLabel", fmt.Errorf("%q: %s", c.NamespaceOptOutLabel, errs[0]))
		}
	}
	return nil
}

// guardOptions are the proxy-env.sh inputs this config gives.
func (c Config) guardOptions() guards.Options {
	o := guards.Options{
		Dir:          TmpPath,
		ProxyHost:    c.Proxy.Host,
		ProxyPort:    c.Proxy.Port,
		Required:     c.RequiredGuards,
		GitSSLCAInfo: c.GitSSLCAInfo,
	}
	switch c.CacheRedirects {
	case "all":
		o.CacheRedirects = guards.CacheRedirectVars()
	case "none", "":
	default:
		for _, v := range strings.Split(c.CacheRedirects, ",") {
			o.CacheRedirects = append(o.CacheRedirects, strings.TrimSpace(v))
		}
	}
	return o
}

func (c Config) allows(o Override) bool { return slices.Contains(c.AllowedOverrides, o) }

func (w WriterMode) validate() error {
	switch w {
	case WriterAuto, WriterRoot, WriterOwner:
		return nil
	}
	return fmt.Errorf("%q: want auto, root or owner", w)
}

func (s SourceMode) validate() error {
	switch s {
	case SourceEmbedded, SourceImage, SourceAuto:
		return nil
	}
	return fmt.Errorf("%q: want embedded, image or auto", s)
}
