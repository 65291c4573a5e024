//go:build tools

// Package kube pins the Kubernetes binaries the tests run (kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet, kubectl); build.sh builds
// them from this module so go.sum checks every byte.
package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
