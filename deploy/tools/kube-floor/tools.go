//go:build tools

// Package kube pins the kube-apiserver and kube-controller-manager of the
// oldest Kubernetes release guardchain supports (the chart's kubeVersion
// floor); the control-plane tests run against it as well as against the
// newest (../kube).
package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
