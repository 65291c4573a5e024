package initguards

import (
	"encoding/json"
	"strings"
)

// Report is what emit staged, or why it failed: one JSON line in the init
// container's termination log, so `kubectl get pod` and the audit read it
// without exec. A sandbox with restartPolicy Never does not retry a failed
// init container, so the reason must be where an operator looks.
type Report struct {
	SHA256        string `json:"sha256,omitempty"`
	Source        string `json:"source,omitempty"`
	Ownership     string `json:"ownership"`
	OwnershipFrom string `json:"ownershipFrom,omitempty"`
	Count         int    `json:"count,omitempty"`
	// Fallback says why an auto source staged the embedded chain.
	Fallback string `json:"fallback,omitempty"`
	// Files is left out where it would pass the kubelet's 4 KiB message limit.
	Files []string `json:"files,omitempty"`
	// Reason (one of the Fail* values) and Error say why emit failed.
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Why emit failed, as a Report's reason.
const (
	FailBadInput          = "bad-input"
	FailUntrustedPreloads = "untrusted-preloads"
	FailMissingGuard      = "missing-guard"
	FailNoPreloads        = "no-preloads"
	FailWrite             = "write-failed"
)

// ParseReport reads a termination message; ok is false for one that is no
// Report (a release before reports, or the kubelet's fallback to the logs).
func ParseReport(msg string) (r Report, ok bool) {
	msg = strings.TrimSpace(msg)
	if !strings.HasPrefix(msg, "{") || json.Unmarshal([]byte(msg), &r) != nil {
		return Report{}, false
	}
	return r, r.SHA256 != "" || r.Reason != ""
}
