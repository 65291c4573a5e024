//go:build tools

// Package agentsandbox pins agent-sandbox's controller, the one that turns an
// OpenShell Sandbox into its pod, for the e2e suite; build-agent-sandbox.sh
// builds it and copies the CRDs of the same module version beside it.
package agentsandbox

import _ "sigs.k8s.io/agent-sandbox/cmd/agent-sandbox-controller"
