package webhook

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	gomodjsonpatch "gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// templatePaths is where each workload kind keeps its pod template (a JSON
// pointer); a Pod is its own template.
var templatePaths = map[string]string{
	"v1/Pod":                   "",
	"apps/v1/Deployment":       "/spec/template",
	"apps/v1/StatefulSet":      "/spec/template",
	"apps/v1/DaemonSet":        "/spec/template",
	"apps/v1/ReplicaSet":       "/spec/template",
	"batch/v1/Job":             "/spec/template",
	"batch/v1/CronJob":         "/spec/jobTemplate/spec/template",
	"v1/ReplicationController": "/spec/template",
	// agent-sandbox, which makes OpenShell's sandbox pods from these.
	"agents.x-k8s.io/v1beta1/Sandbox":                     "/spec/podTemplate",
	"agents.x-k8s.io/v1alpha1/Sandbox":                    "/spec/podTemplate",
	"extensions.agents.x-k8s.io/v1beta1/SandboxTemplate":  "/spec/podTemplate",
	"extensions.agents.x-k8s.io/v1alpha1/SandboxTemplate": "/spec/podTemplate",
}

// OfflineNote is a warning from offline injection, tied to its document.
type OfflineNote struct {
	Document int
	Object   string
	Warning  string
}

// InjectManifests reads multi-document YAML from r and writes it to w with
// every pod and pod template injected by the same Inject and Patch the webhook
// uses, so offline and admission results agree. Other documents pass through.
// A document that cannot be read, or a pod Inject denies, is an error naming
// the document's number; nothing is written after it.
func InjectManifests(r io.Reader, w io.Writer, cfg Config) ([]OfflineNote, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var notes []OfflineNote
	first := true
	for n := 1; ; n++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return notes, nil
		}
		if err != nil {
			return notes, fmt.Errorf("document %d: reading: %w", n, err)
		}
		if isEmptyDoc(doc) {
			n--
			continue
		}
		out, docNotes, err := injectDocument(doc, cfg)
		if err != nil {
			return notes, fmt.Errorf("document %d: %w", n, err)
		}
		for _, note := range docNotes {
			note.Document = n
			notes = append(notes, note)
		}
		if !first {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return notes, err
			}
		}
		first = false
		if _, err := w.Write(out); err != nil {
			return notes, err
		}
	}
}

func isEmptyDoc(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") && t != "---" {
			return false
		}
	}
	return true
}

type objectHead struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

func injectDocument(doc []byte, cfg Config) ([]byte, []OfflineNote, error) {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, nil, fmt.Errorf("not valid YAML: %w", err)
	}
	var head objectHead
	if err := json.Unmarshal(js, &head); err != nil {
		return nil, nil, fmt.Errorf("not a Kubernetes object: %w", err)
	}
	if head.Kind == "" || head.APIVersion == "" {
		return nil, nil, errors.New("not a Kubernetes object: apiVersion and kind are required")
	}
	if head.APIVersion == "v1" && head.Kind == "List" {
		return injectList(js, cfg)
	}
	name := head.Kind + " " + strings.TrimPrefix(head.Metadata.Namespace+"/"+head.Metadata.Name, "/")
	base, ok := templatePaths[head.APIVersion+"/"+head.Kind]
	if !ok {
		return doc, nil, nil
	}
	pod, hasMeta, err := templatePod(js, base, head.Metadata.Namespace)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	res := Inject(pod, cfg)
	var notes []OfflineNote
	for _, wmsg := range res.Warnings() {
		notes = append(notes, OfflineNote{Object: name, Warning: wmsg})
	}
	switch res.Outcome {
	case OutcomeDenied:
		return nil, notes, fmt.Errorf("%s: %s", name, res.Message())
	case OutcomeInjected:
	default:
		return doc, notes, nil
	}
	ops := Patch(pod, res.Pod)
	for i := range ops {
		ops[i].Path = base + ops[i].Path
	}
	if !hasMeta { // a template may omit metadata; the patch adds annotations to it
		ops = append([]gomodjsonpatch.JsonPatchOperation{{Operation: "add", Path: base + "/metadata", Value: map[string]any{}}}, ops...)
	}
	raw, err := json.Marshal(ops)
	if err != nil {
		return nil, notes, fmt.Errorf("%s: encoding patch: %w", name, err)
	}
	p, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		return nil, notes, fmt.Errorf("%s: decoding patch: %w", name, err)
	}
	patched, err := p.Apply(js)
	if err != nil {
		return nil, notes, fmt.Errorf("%s: applying patch: %w", name, err)
	}
	out, err := yaml.JSONToYAML(patched)
	if err != nil {
		return nil, notes, fmt.Errorf("%s: encoding YAML: %w", name, err)
	}
	return out, notes, nil
}

// injectList injects each item of a v1 List (what kubectl get -o yaml prints).
func injectList(js []byte, cfg Config) ([]byte, []OfflineNote, error) {
	var list map[string]any
	if err := json.Unmarshal(js, &list); err != nil {
		return nil, nil, err
	}
	items, _ := list["items"].([]any)
	var notes []OfflineNote
	for i, item := range items {
		b, err := json.Marshal(item)
		if err != nil {
			return nil, notes, err
		}
		out, itemNotes, err := injectDocument(b, cfg)
		notes = append(notes, itemNotes...)
		if err != nil {
			return nil, notes, fmt.Errorf("item %d: %w", i, err)
		}
		outJS, err := yaml.YAMLToJSON(out)
		if err != nil {
			return nil, notes, err
		}
		var v any
		if err := json.Unmarshal(outJS, &v); err != nil {
			return nil, notes, err
		}
		items[i] = v
	}
	b, err := json.Marshal(list)
	if err != nil {
		return nil, notes, err
	}
	out, err := yaml.JSONToYAML(b)
	return out, notes, err
}

// templatePod reads the pod template at base (a JSON pointer) as a Pod, and
// says whether the template has metadata.
func templatePod(js []byte, base, namespace string) (*corev1.Pod, bool, error) {
	var obj any
	if err := json.Unmarshal(js, &obj); err != nil {
		return nil, false, err
	}
	node := obj
	for _, seg := range strings.Split(strings.TrimPrefix(base, "/"), "/") {
		if seg == "" {
			continue
		}
		m, ok := node.(map[string]any)
		if !ok || m[seg] == nil {
			return nil, false, fmt.Errorf("has no pod template at %s", base)
		}
		node = m[seg]
	}
	tmpl, ok := node.(map[string]any)
	if !ok {
		return nil, false, fmt.Errorf("pod template at %s is not an object", base)
	}
	_, hasMeta := tmpl["metadata"]
	b, err := json.Marshal(node)
	if err != nil {
		return nil, false, err
	}
	var pod corev1.Pod
	if err := json.Unmarshal(b, &pod); err != nil {
		return nil, false, fmt.Errorf("pod template at %s: %w", base, err)
	}
	if pod.Namespace == "" {
		pod.Namespace = namespace
	}
	return &pod, hasMeta, nil
}
