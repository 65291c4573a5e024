package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badConfig := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(badConfig, []byte("conflict: maybe\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	example := "../../deploy/examples/openshell-sandbox-pod.yaml"
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"no command", nil, "", 2, "", "usage: guardchain-webhook serve|inject|audit|version"},
		{"unknown", []string{"serv"}, "", 2, "", "guardchain-webhook: unknown command \"serv\"\n"},
		{"inject file", []string{"inject", "-f", example}, "", 0, "name: guardchain-init", ""},
		{"inject stdin", []string{"inject", "-f", "-"}, "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: agent, image: node}]}\n", 0, "guardchain.dev/status: injected", ""},
		{"inject without -f", []string{"inject"}, "", 2, "", "guardchain-webhook: inject: want -f FILE or -f -\n"},
		{"inject bad yaml", []string{"inject", "-f", bad}, "", 1, "", "guardchain-webhook: inject: document 1: not valid YAML: "},
		{"inject missing file", []string{"inject", "-f", "/nonexistent.yaml"}, "", 1, "", "guardchain-webhook: inject: open /nonexistent.yaml: no such file or directory\n"},
		{"bad config", []string{"inject", "-f", example, "--config", badConfig}, "", 1, "", "guardchain-webhook: inject: config conflict: \"maybe\": want deny or skip\n"},
		{"serve bad log format", []string{"serve", "--log-format", "xml"}, "", 2, "", "guardchain-webhook: --log-format \"xml\": want json or text\n"},
		{"version", []string{"version"}, "", 0, "chain sha256:", ""},
		{"audit bad output", []string{"audit", "-o", "wide"}, "", 2, "", "audit: -o \"wide\": want table, json or yaml\n"},
		{"audit -n and -A", []string{"audit", "-nfoo", "-A"}, "", 2, "", "audit: -n and -A exclude each other\n"},
		{"audit unreadable kubeconfig", []string{"audit", "--kubeconfig", "/nonexistent"}, "", 2, "", "audit: reading kubeconfig: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tt.args, strings.NewReader(tt.stdin), &out, &errb)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.wantCode, errb.String())
			}
			if !strings.Contains(out.String(), tt.wantStdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.wantStdout, out.String())
			}
			if tt.wantStderr == "" && errb.Len() > 0 || !strings.HasPrefix(errb.String(), tt.wantStderr) {
				t.Errorf("stderr %q, want prefix %q", errb.String(), tt.wantStderr)
			}
		})
	}
}
