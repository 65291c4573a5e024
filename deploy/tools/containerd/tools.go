//go:build tools

// Package containerd pins the container runtime of the local cluster
// (deploy/local): containerd 2, as Kubernetes 1.36 and later expect (1.x
// answers no RuntimeConfig, a fallback the kubelet drops in 1.38, and has no
// image volumes). build.sh builds the daemon, its runc shim and ctr.
package containerd

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
