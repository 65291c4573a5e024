//go:build tools

// Package helm pins the helm that installs the chart in the e2e suite.
package helm

import _ "helm.sh/helm/v3/cmd/helm"
