package webhook

import (
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"os"
	"strings"
	"testing"
)

// The chart's backstop (charts/guardchain/templates/enforcement.yaml) is this
// text: the policy's expressions with each config value a template action
// (a guardchain.cel.* helper in _helpers.tpl that prints the same CEL literal
// goParams makes). A test regenerates it (-update) and fails when it is stale;
// another renders the chart for several values files and compares the result
// with EnforcementPolicy.

// chartParams are the template actions that fill in the config values.
func chartParams() celParams {
	inc := func(name string) string { return `{{ include "guardchain.cel.` + name + `" . }}` }
	return celParams{
		names: inc("names"), repos: inc("repos"), reposText: inc("reposText"),
		source: inc("source"), proxyHost: inc("proxyHost"), proxyPort: inc("proxyPort"), require: inc("require"),
		preloadsDir: inc("preloadsDir"), cacheRedirects: inc("cacheRedirects"), gitSSLCAInfo: inc("gitSSLCAInfo"),
		ownership: inc("ownership"), configNames: `{{ include "guardchain.celContainers" . }}`, writer: inc("writer"),
		selectorKeys: inc("selectorKeys"),
	}
}

// EnforcementTemplate is the chart's templates/enforcement.yaml.
func EnforcementTemplate() (string, error) {
	spec := policySpec(chartParams())
	var b strings.Builder
	// quoted is a YAML double-quoted scalar. The CEL has no double quote or
	// backslash of its own; the template actions' quotes are gone before
	// the YAML is read.
	quoted := func(s string) (string, error) {
		plain := s
		for strings.Contains(plain, "{{") {
			i := strings.Index(plain, "{{")
			j := strings.Index(plain[i:], "}}")
			if j < 0 {
				return "", fmt.Errorf("unclosed template action in %q", s)
			}
			plain = plain[:i] + plain[i+j+2:]
		}
		if strings.ContainsAny(plain, "\"\\\n") {
			return "", fmt.Errorf("expression holds a double quote, backslash or newline: %q", plain)
		}
		return `"` + s + `"`, nil
	}
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w(`{{- /*
The backstop (docs/enforcement.md): a ValidatingAdmissionPolicy, evaluated
by the API server after all mutation, that refuses a sandbox pod without the
guard chain as the webhook renders it, whatever happened to the webhook.
Generated from webhook/enforcement.go by go test ./webhook -run
EnforcementTemplate -update: edit it there, not here.
*/}}
{{- $action := include "guardchain.enforcementAction" . }}
{{- /* ValidatingAdmissionPolicy v1 is GA from 1.30, the chart's kubeVersion. */}}
{{- if ne $action "off" }}
{{- $name := include "guardchain.fullname" . }}
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: {{ $name }}
  labels:
    {{- include "guardchain.labels" . | nindent 4 }}
spec:
  failurePolicy: %s
  matchConstraints:
    {{- include "guardchain.namespaceSelector" . | nindent 4 }}
    objectSelector:
      {{- toYaml .Values.webhook.objectSelector | nindent 6 }}
    matchPolicy: %s
    resourceRules:
`, *spec.FailurePolicy, *spec.MatchConstraints.MatchPolicy)
	// rules writes resource rules at an indent.
	rules := func(indent string, rs []admissionregistrationv1.NamedRuleWithOperations) {
		for _, r := range rs {
			ops := make([]string, len(r.Operations))
			for i, o := range r.Operations {
				ops[i] = string(o)
			}
			w("%[1]s- operations: [%[2]s]\n%[1]s  apiGroups: [\"%[3]s\"]\n%[1]s  apiVersions: [%[4]s]\n%[1]s  resources: [%[5]s]\n%[1]s  scope: %[6]s\n",
				indent, strings.Join(ops, ", "), strings.Join(r.APIGroups, `", "`), strings.Join(r.APIVersions, ", "), strings.Join(r.Resources, ", "), *r.Scope)
		}
	}
	rules("    ", spec.MatchConstraints.ResourceRules)
	w("  matchConditions:\n")
	for _, c := range spec.MatchConditions {
		q, err := quoted(c.Expression)
		if err != nil {
			return "", fmt.Errorf("match condition %s: %w", c.Name, err)
		}
		w("  - name: %s\n    expression: %s\n", c.Name, q)
	}
	w("  variables:\n")
	for _, v := range spec.Variables {
		q, err := quoted(v.Expression)
		if err != nil {
			return "", fmt.Errorf("variable %s: %w", v.Name, err)
		}
		w("  - name: %s\n    expression: %s\n", v.Name, q)
	}
	w("  validations:\n")
	for _, v := range spec.Validations {
		e, err := quoted(v.Expression)
		if err != nil {
			return "", fmt.Errorf("validation %q: %w", v.Message, err)
		}
		m, err := quoted(v.Message)
		if err != nil {
			return "", err
		}
		me, err := quoted(v.MessageExpression)
		if err != nil {
			return "", err
		}
		w("  - expression: %s\n    reason: %s\n    message: %s\n    messageExpression: %s\n", e, *v.Reason, m, me)
	}
	w(`---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: {{ $name }}
  labels:
    {{- include "guardchain.labels" . | nindent 4 }}
spec:
  policyName: {{ $name }}
  {{- if eq $action "Deny" }}
  validationActions: [Deny]
  {{- else }}
  validationActions: [Warn, Audit]
  {{- end }}
`)
	w("{{- end }}\n")
	return b.String(), nil
}

// The chart's backstop is generated from the policy's expressions: a stale
// template fails here (go test ./webhook -run EnforcementTemplate -update
// rewrites it).
func TestEnforcementTemplateIsGenerated(t *testing.T) {
	want, err := EnforcementTemplate()
	if err != nil {
		t.Fatal(err)
	}
	const path = "../charts/guardchain/templates/enforcement.yaml"
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s is stale: run go test ./webhook -run EnforcementTemplate -update", path)
	}
}
