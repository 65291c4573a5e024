package webhook

import (
	"bytes"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const manifests = `# a comment-only document comes first
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: gateway
  namespace: openshell
spec:
  replicas: 1
  selector:
    matchLabels: {app: gateway}
  template:
    metadata:
      labels: {app: gateway}
    spec:
      containers:
      - name: agent
        image: node:22-slim
---
apiVersion: v1
kind: Service
metadata:
  name: gateway
spec:
  ports: [{port: 80}]
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: agent
            image: node:22-slim
---
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: nginx
    image: nginx:1.27
---
apiVersion: agents.x-k8s.io/v1beta1
kind: Sandbox
metadata:
  name: my-assistant
spec:
  podTemplate:
    metadata:
      annotations: {openshell.io/sandbox-id: 6f1c2a9e}
    spec:
      restartPolicy: Never
      containers:
      - name: agent
        image: node:22-slim
        env: [{name: OPENSHELL_SANDBOX_UID, value: "1000"}]
`

func TestInjectManifestsMultiDocument(t *testing.T) {
	var out bytes.Buffer
	notes, err := InjectManifests(strings.NewReader(manifests), &out, Default())
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(out.String(), "---\n")
	if len(docs) != 5 {
		t.Fatalf("got %d documents, want 5:\n%s", len(docs), out.String())
	}
	type obj struct {
		Kind string         `json:"kind"`
		Spec map[string]any `json:"spec"`
	}
	for i, want := range []struct {
		kind     string
		injected bool
	}{{"Deployment", true}, {"Service", false}, {"CronJob", true}, {"Pod", false}, {"Sandbox", true}} {
		var o obj
		if err := yaml.Unmarshal([]byte(docs[i]), &o); err != nil {
			t.Fatalf("document %d: %v", i+1, err)
		}
		has := strings.Contains(docs[i], "name: "+InitContainerName) && strings.Contains(docs[i], AnnotationChain)
		if o.Kind != want.kind || has != want.injected {
			t.Errorf("document %d: kind %s injected=%v, want %s %v", i+1, o.Kind, has, want.kind, want.injected)
		}
	}
	if !strings.Contains(docs[4], "value: uid:1000:1000") {
		t.Errorf("the Sandbox's pod template is not owned by its OPENSHELL_SANDBOX_UID:\n%s", docs[4])
	}
	if !strings.Contains(docs[1], "ports: [{port: 80}]") {
		t.Errorf("the Service was not passed through verbatim:\n%s", docs[1])
	}
	if len(notes) != 1 || notes[0].Document != 4 || notes[0].Object != "Pod web" || !strings.Contains(notes[0].Warning, "no-target-container") {
		t.Errorf("notes %+v, want one for document 4 (Pod web)", notes)
	}
	// Injecting the output again changes nothing.
	var again bytes.Buffer
	if _, err := InjectManifests(bytes.NewReader(out.Bytes()), &again, Default()); err != nil {
		t.Fatal(err)
	}
	if again.String() != out.String() {
		t.Errorf("inject is not idempotent offline")
	}
}

func TestInjectManifestsErrors(t *testing.T) {
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: agent, image: x}]}\n"
	tests := []struct {
		name, in, want string
	}{
		{"bad yaml", pod + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: [\n", "document 2: not valid YAML: "},
		{"no kind", pod + "---\nfoo: bar\n", "document 2: not a Kubernetes object: apiVersion and kind are required"},
		{"bad template", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {template: {spec: {containers: 3}}}\n",
			"document 1: Deployment d: pod template at /spec/template: json: cannot unmarshal number"},
		{"denied", "apiVersion: v1\nkind: Pod\nmetadata: {name: h, namespace: openshell}\nspec:\n  containers: [{name: agent, image: x, volumeMounts: [{name: h, mountPath: /tmp}]}]\n  volumes: [{name: h, hostPath: {path: /x}}]\n",
			"document 1: Pod openshell/h: guardchain: container agent mounts /tmp from volume h, which is a hostPath"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := InjectManifests(strings.NewReader(tt.in), &out, Default())
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line starting %q", err, tt.want)
			}
		})
	}
}

func TestInjectManifestsList(t *testing.T) {
	in := `apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: StatefulSet
  metadata: {name: gw, namespace: openshell}
  spec:
    serviceName: gw
    selector: {matchLabels: {app: gw}}
    template:
      metadata: {labels: {app: gw}}
      spec: {containers: [{name: agent, image: node}]}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: c}
  data: {a: b}
`
	var out bytes.Buffer
	if _, err := InjectManifests(strings.NewReader(in), &out, Default()); err != nil {
		t.Fatal(err)
	}
	var list struct {
		Items []map[string]any `json:"items"`
	}
	if err := yaml.Unmarshal(out.Bytes(), &list); err != nil || len(list.Items) != 2 {
		t.Fatalf("output %s: %v", out.String(), err)
	}
	if !strings.Contains(out.String(), "name: "+InitContainerName) || list.Items[1]["kind"] != "ConfigMap" {
		t.Errorf("the StatefulSet in the List was not injected, or the ConfigMap was lost:\n%s", out.String())
	}
}
