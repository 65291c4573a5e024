package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// v010Injected is the sandbox pod v0.1.0 (commit 4b05e25), a release
// without the backstop, injects with its chart's default config
// ("guardchain-webhook inject -f pod.yaml" built from that commit, with its
// chart's config.yaml): what one of its replicas returns to the API server
// while helm upgrade rolls the webhook's Deployment.
const v010Injected = `apiVersion: v1
kind: Pod
metadata:
  annotations:
    guardchain.dev/chain: 45e09b74658919e63d2cb336a0d5c4ceb3b5dccdafb35e6b3471e65585985de1
    guardchain.dev/status: injected
    guardchain.dev/version: dev
    openshell.io/sandbox-id: 6f1c
  name: old-injected
spec:
  containers:
  - env:
    - name: OPENSHELL_SANDBOX_UID
      value: "1000"
    image: node:22-slim
    name: agent
    volumeMounts:
    - mountPath: /tmp
      name: guardchain-tmp
  initContainers:
  - args:
    - emit
    env:
    - name: GUARDCHAIN_DIR
      value: /tmp
    - name: GUARDCHAIN_OWNERSHIP
      value: root
    - name: GUARDCHAIN_PROXY_HOST
      value: 10.200.0.1
    - name: GUARDCHAIN_PROXY_PORT
      value: "3128"
    - name: GUARDCHAIN_REQUIRE
      value: safety-net,http-proxy-fix,nemotron-inference-fix,ciao-network-guard
    - name: GUARDCHAIN_CACHE_REDIRECTS
      value: all
    image: ghcr.io/guardchain/initguards:v0.1.0
    imagePullPolicy: IfNotPresent
    name: guardchain-init
    resources:
      limits:
        cpu: 100m
        ephemeral-storage: 8Mi
        memory: 32Mi
      requests:
        cpu: 10m
        ephemeral-storage: 1Mi
        memory: 16Mi
    securityContext:
      allowPrivilegeEscalation: false
      capabilities:
        drop:
        - ALL
      privileged: false
      readOnlyRootFilesystem: true
      runAsGroup: 0
      runAsNonRoot: false
      runAsUser: 0
      seccompProfile:
        type: RuntimeDefault
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: FallbackToLogsOnError
    volumeMounts:
    - mountPath: /tmp
      name: guardchain-tmp
  volumes:
  - emptyDir:
      sizeLimit: 64Mi
    name: guardchain-tmp
`

// An upgrade from v0.1.0 brings the backstop: with enforcement.action auto
// it arrives in Warn, so the pods the previous replicas inject during the
// rollout are admitted (with a warning); the next helm upgrade makes it
// Deny. helm rollback takes the policy away again.
func TestControlPlaneTheBackstopArrivesInWarnOnTheUpgradeFromARelease(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		args   []string
		labels map[string]string
	}{
		{"default values", nil, nil},
		{"webhook.objectSelector", []string{"--set-string", `webhook.objectSelector.matchLabels.openshell\.dev/sandbox-managed=true`},
			map[string]string{"openshell.dev/sandbox-managed": "true"}},
		{"--reuse-values", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := installChart(t, previousChart, tc.args...)
			var ns string
			for _, a := range r.base {
				if v, ok := strings.CutPrefix(a, "webhook.namespaces={"); ok {
					ns = strings.TrimSuffix(v, "}")
				}
			}
			if _, err := clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if tc.name == "--reuse-values" {
				r.chart = chartDir
				r.upgrade(t)
			} else {
				r.upgradeTo(t, chartDir, tc.args...)
			}
			// The release's name holds the chart's: the policy and its
			// binding are named as the release.
			actions := func() string {
				for _, o := range r.objects(t) {
					if o.GetKind() == "ValidatingAdmissionPolicyBinding" && o.GetName() == r.name {
						a, _, _ := unstructured.NestedStringSlice(o.Object, "spec", "validationActions")
						return strings.Join(a, ",")
					}
				}
				return "none"
			}
			if got := actions(); got != "Warn,Audit" {
				t.Errorf("the backstop arrives with validationActions %s, want Warn,Audit for this upgrade", got)
			}
			if notes := r.helm(t, "get", "notes", r.name, "-n", r.ns); !strings.Contains(notes, "arrives with this upgrade, in Warn") {
				t.Errorf("the notes do not say the backstop warns for now:\n%s", notes)
			}
			// Nothing serves the release's webhook here: the pod meets the
			// policy alone, as after an old replica answered.
			unregister := func() {
				for _, o := range r.objects(t) {
					if o.GetKind() == "MutatingWebhookConfiguration" {
						if err := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, o.GetName(), metav1.DeleteOptions{}); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			unregister()
			var old corev1.Pod
			if err := yaml.Unmarshal([]byte(v010Injected), &old); err != nil {
				t.Fatal(err)
			}
			old.Labels = tc.labels
			if _, err := dryRunCreate(ns, old.DeepCopy()); err != nil {
				t.Errorf("the pod a previous replica injects is refused during the rollout: %v", err)
			}
			// After the rollout, the next upgrade denies.
			r.chart = chartDir
			r.upgrade(t)
			unregister()
			if got := actions(); got != "Deny" {
				t.Errorf("the next upgrade leaves validationActions %s, want Deny", got)
			}
			waitFor(t, "the policy to deny", func() error {
				_, err := dryRunCreate(ns, old.DeepCopy())
				if err != nil && strings.Contains(err.Error(), "guardchain: pod") {
					return nil
				}
				return fmt.Errorf("not denying yet (%v)", err) //nolint:errorlint // err may be nil
			})
			r.helm(t, "rollback", r.name, "1")
			if _, err := clientset.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, r.name, metav1.GetOptions{}); err == nil {
				t.Errorf("after rollback to v0.1.0: policy %s left", r.name)
			}
		})
	}
}
