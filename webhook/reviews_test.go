package webhook

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/applyconfigurations"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"

	"github.com/guardchain/guardchain/podreview"
)

// The reviews the benchmarks send (make bench-handler, make bench-load):
// each built from a pod of the golden corpus as kube-apiserver posts it to
// the webhook. go test ./webhook -run ReviewsFromCorpus -update rewrites
// them.
const reviewsDir = "testdata/reviews"

// benchReviews names the corpus pods the benchmarks are measured on: the
// shapes OpenShell creates, a sandbox pod as an ordinary cluster has it
// (Vault annotations, the ServiceAccount token), and a few other shapes.
// Each is injected under the default configuration, as the load run's
// server has it.
var benchReviews = []string{
	"openshell-sandbox",
	"openshell-sandbox-vault",
	"openshell-combined",
	"openshell-sidecar",
	"openshell-openshift",
	"guaranteed-qos",
	"native-sidecar",
	"existing-init-containers",
}

// apiServer is how the review was sent: what a cluster's API server adds
// to a pod before the webhook sees it.
type apiServer struct {
	// serviceAccounts: the ServiceAccount admission plugin is on (as on
	// every cluster; envtest turns it off), so pods that do not opt out
	// get the token volume kube-api-access-*, mounted in every container.
	serviceAccounts bool
	manager         string // the field manager of the create
}

// cluster is the API server the committed reviews are sent by.
var cluster = apiServer{serviceAccounts: true, manager: "kubectl-create"}

// Fixed where two sends of the same pod differ, as in the captured review.
const (
	reviewUID      = "0f6bd7a4-1c5e-4b1e-8f0e-1a2b3c4d5e6f"
	reviewTime     = "2026-11-30T00:00:00Z"
	tokenVolume    = "kube-api-access-x7k2p"
	tokenMountPath = "/var/run/secrets/kubernetes.io/serviceaccount"
)

// reviewFor is the AdmissionReview kube-apiserver posts for creating pod:
// the pod with the API server's defaults, its managed fields, then what the
// admission plugins that run before webhooks add (ServiceAccount,
// DefaultTolerationSeconds, Priority), in a request from an admin.
func (s apiServer) reviewFor(t testing.TB, pod *corev1.Pod) []byte {
	t.Helper()
	p := pod.DeepCopy()
	p.APIVersion, p.Kind = "v1", "Pod"
	if p.Namespace == "" {
		p.Namespace = "openshell"
	}
	defaultPod(p)
	p.ManagedFields = []metav1.ManagedFieldsEntry{managedFields(t, p, s.manager)}
	if s.serviceAccounts {
		mountServiceAccountToken(p)
	}
	defaultTolerations(p)
	if p.Spec.PriorityClassName == "" && p.Spec.Priority == nil {
		p.Spec.Priority = ptr.To[int32](0)
		p.Spec.PreemptionPolicy = ptr.To(corev1.PreemptLowerPriority)
	}
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	gvk := metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}
	gvr := metav1.GroupVersionResource{Version: "v1", Resource: "pods"}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: reviewUID, Kind: gvk, Resource: gvr, RequestKind: &gvk, RequestResource: &gvr,
			Name: p.Name, Namespace: p.Namespace, Operation: admissionv1.Create,
			UserInfo: authenticationv1.UserInfo{Username: "admin", Groups: []string{"system:masters", "system:authenticated"},
				Extra: map[string]authenticationv1.ExtraValue{"authentication.kubernetes.io/credential-id": {"X509SHA256=" + strings.Repeat("0", 64)}}},
			Object:  runtime.RawExtension{Raw: raw},
			DryRun:  ptr.To(false),
			Options: runtime.RawExtension{Raw: []byte(`{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}`)},
		},
	}
	b, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// defaultPod sets what the API server's defaulting sets on a pod create
// (k8s.io/kubernetes/pkg/apis/core/v1/defaults.go), for the fields the
// corpus uses.
func defaultPod(p *corev1.Pod) {
	s := &p.Spec
	if s.RestartPolicy == "" {
		s.RestartPolicy = corev1.RestartPolicyAlways
	}
	if s.TerminationGracePeriodSeconds == nil {
		s.TerminationGracePeriodSeconds = ptr.To[int64](30)
	}
	if s.DNSPolicy == "" {
		s.DNSPolicy = corev1.DNSClusterFirst
	}
	if s.SecurityContext == nil {
		s.SecurityContext = &corev1.PodSecurityContext{}
	}
	if s.SchedulerName == "" {
		s.SchedulerName = corev1.DefaultSchedulerName
	}
	if s.EnableServiceLinks == nil {
		s.EnableServiceLinks = ptr.To(true)
	}
	// The deprecated serviceAccount follows serviceAccountName (conversion).
	s.DeprecatedServiceAccount = s.ServiceAccountName
	for _, cs := range [][]corev1.Container{s.InitContainers, s.Containers} {
		for i := range cs {
			defaultContainer(&cs[i])
		}
	}
	for i := range s.Volumes {
		defaultVolume(&s.Volumes[i].VolumeSource)
	}
}

func defaultContainer(c *corev1.Container) {
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = corev1.TerminationMessagePathDefault
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = pullPolicyFor(c.Image)
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = corev1.ProtocolTCP
		}
	}
	for i := range c.Env {
		if f := c.Env[i].ValueFrom; f != nil && f.FieldRef != nil && f.FieldRef.APIVersion == "" {
			f.FieldRef.APIVersion = "v1"
		}
	}
	// Requests default to the limits where a container sets none.
	for name, l := range c.Resources.Limits {
		if _, ok := c.Resources.Requests[name]; !ok {
			if c.Resources.Requests == nil {
				c.Resources.Requests = corev1.ResourceList{}
			}
			c.Resources.Requests[name] = l.DeepCopy()
		}
	}
	for _, pr := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		if pr == nil {
			continue
		}
		for _, f := range []*int32{&pr.TimeoutSeconds, &pr.PeriodSeconds, &pr.SuccessThreshold, &pr.FailureThreshold} {
			if *f == 0 {
				*f = map[*int32]int32{&pr.TimeoutSeconds: 1, &pr.PeriodSeconds: 10, &pr.SuccessThreshold: 1, &pr.FailureThreshold: 3}[f]
			}
		}
	}
}

// pullPolicyFor is the default pull policy: Always for :latest or no tag.
func pullPolicyFor(image string) corev1.PullPolicy {
	if strings.Contains(image, "@") {
		return corev1.PullIfNotPresent
	}
	name := image[strings.LastIndex(image, "/")+1:]
	if i := strings.LastIndex(name, ":"); i < 0 || name[i+1:] == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

func defaultVolume(v *corev1.VolumeSource) {
	mode := ptr.To[int32](corev1.SecretVolumeSourceDefaultMode)
	switch {
	case v.HostPath != nil:
		if v.HostPath.Type == nil {
			v.HostPath.Type = ptr.To(corev1.HostPathUnset)
		}
	case v.Secret != nil:
		if v.Secret.DefaultMode == nil {
			v.Secret.DefaultMode = mode
		}
	case v.ConfigMap != nil:
		if v.ConfigMap.DefaultMode == nil {
			v.ConfigMap.DefaultMode = mode
		}
	case v.DownwardAPI != nil:
		if v.DownwardAPI.DefaultMode == nil {
			v.DownwardAPI.DefaultMode = mode
		}
	case v.Projected != nil:
		if v.Projected.DefaultMode == nil {
			v.Projected.DefaultMode = mode
		}
		for _, src := range v.Projected.Sources {
			if t := src.ServiceAccountToken; t != nil && t.ExpirationSeconds == nil {
				t.ExpirationSeconds = ptr.To[int64](3600)
			}
		}
	case v.Image != nil:
		if v.Image.PullPolicy == "" {
			v.Image.PullPolicy = pullPolicyFor(v.Image.Reference)
		}
	case v.EmptyDir == nil && v.PersistentVolumeClaim == nil && v.Ephemeral == nil && v.CSI == nil && v.NFS == nil:
		v.EmptyDir = &corev1.EmptyDirVolumeSource{}
	}
}

// managedFields is the entry the API server records for a create by
// manager: every field of the defaulted pod but the object's identity.
func managedFields(t testing.TB, p *corev1.Pod, manager string) metav1.ManagedFieldsEntry {
	t.Helper()
	// As the field manager does: the fields added to or changed in an
	// empty pod.
	tc := applyconfigurations.NewTypeConverter(scheme.Scheme)
	empty, err := tc.ObjectToTyped(&corev1.Pod{TypeMeta: p.TypeMeta})
	if err != nil {
		t.Fatal(err)
	}
	tv, err := tc.ObjectToTyped(p)
	if err != nil {
		t.Fatal(err)
	}
	diff, err := empty.Compare(tv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := diff.Added.Union(diff.Modified).ToJSON()
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	// The field manager leaves out the identity and the status of a create.
	delete(fields, "f:apiVersion")
	delete(fields, "f:kind")
	delete(fields, "f:status")
	if meta, ok := fields["f:metadata"].(map[string]any); ok {
		for _, f := range []string{"f:name", "f:namespace", "f:generateName"} {
			delete(meta, f)
		}
		if len(meta) == 0 {
			delete(fields, "f:metadata")
		}
	}
	if b, err = json.Marshal(fields); err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339, reviewTime)
	if err != nil {
		t.Fatal(err)
	}
	return metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
		Time: &metav1.Time{Time: at}, FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(string(b))}
}

// mountServiceAccountToken is the ServiceAccount admission plugin: the
// default ServiceAccount, and its token, the cluster's CA and the
// namespace in a projected volume mounted read-only in every container.
func mountServiceAccountToken(p *corev1.Pod) {
	s := &p.Spec
	if s.ServiceAccountName == "" {
		s.ServiceAccountName = "default"
		s.DeprecatedServiceAccount = "default"
	}
	if s.AutomountServiceAccountToken != nil && !*s.AutomountServiceAccountToken {
		return
	}
	s.Volumes = append(s.Volumes, corev1.Volume{Name: tokenVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: ptr.To[int64](3607), Path: "token"}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
				Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
				{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		},
		DefaultMode: ptr.To[int32](corev1.ProjectedVolumeSourceDefaultMode),
	}}})
	mount := corev1.VolumeMount{Name: tokenVolume, ReadOnly: true, MountPath: tokenMountPath}
	for _, cs := range [][]corev1.Container{s.InitContainers, s.Containers} {
	next:
		for i := range cs {
			for _, m := range cs[i].VolumeMounts {
				if m.MountPath == tokenMountPath {
					continue next
				}
			}
			cs[i].VolumeMounts = append(cs[i].VolumeMounts, mount)
		}
	}
}

// defaultTolerations is the DefaultTolerationSeconds admission plugin.
func defaultTolerations(p *corev1.Pod) {
	for _, key := range []string{"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"} {
		has := false
		for _, t := range p.Spec.Tolerations {
			has = has || (t.Key == key || t.Key == "" && t.Operator == corev1.TolerationOpExists) && (t.Effect == "" || t.Effect == corev1.TaintEffectNoExecute)
		}
		if !has {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists,
				Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)})
		}
	}
}

// The generator, applied to the pod of the captured review as envtest's API
// server had it (no ServiceAccount plugin), gives that review byte for
// byte: the reviews it builds from the corpus are shaped as the API server
// sends them.
func TestReviewGeneratorGivesTheCapturedReview(t *testing.T) {
	pod := readPod(t, "testdata/openshell-sandbox.yaml")
	pod.Annotations = map[string]string{SandboxIDAnnotation: "6f1c2a9e-3b7d-4c1e-9a55-0d2e8f4b7a10"}
	got := apiServer{manager: "integration.test"}.reviewFor(t, pod)
	want := bytes.TrimSpace(readFile(t, sandboxReview))
	if !bytes.Equal(got, want) {
		t.Errorf("the generated review is not the captured one (-captured +generated):\n%s", cmp.Diff(indentJSON(t, want), indentJSON(t, got)))
	}
}

func indentJSON(t *testing.T, b []byte) string {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// Each review of the set is committed as generated, is read in one pass,
// and is answered with a patch by the default configuration.
func TestReviewsFromCorpus(t *testing.T) {
	h := &Handler{Config: Default(), Log: logr.Discard()}
	for _, name := range benchReviews {
		t.Run(name, func(t *testing.T) {
			body := append(cluster.reviewFor(t, readPod(t, filepath.Join("testdata", name+".yaml"))), '\n')
			path := filepath.Join(reviewsDir, name+".json")
			if *update {
				if err := os.WriteFile(path, body, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if want := readFile(t, path); !bytes.Equal(want, body) {
				t.Fatalf("%s is not what the generator builds (go test ./webhook -run ReviewsFromCorpus -update):\n%s",
					path, cmp.Diff(indentJSON(t, want), indentJSON(t, body)))
			}
			if _, _, ok := podreview.Decode(body); !ok {
				t.Fatal("the review took the fallback")
			}
			a := serveWith(h, "application/json", bytes.NewReader(body))
			if a.code != http.StatusOK || !strings.Contains(a.body, `"patch":"`) {
				t.Errorf("answered HTTP %d without a patch: %s", a.code, a.body)
			}
			sameAnswer(t, h, "application/json", body)
		})
	}
	// Nothing in the folder that the set does not name.
	paths, err := filepath.Glob(filepath.Join(reviewsDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != len(benchReviews) {
		t.Errorf("%d reviews in %s, %d named: %v", len(paths), reviewsDir, len(benchReviews), paths)
	}
}

// reviewFiles are the set's files, in the set's order.
func reviewFiles() []string {
	out := make([]string, len(benchReviews))
	for i, n := range benchReviews {
		out[i] = filepath.Join(reviewsDir, n+".json")
	}
	return out
}
