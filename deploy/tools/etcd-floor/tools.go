//go:build tools

// Package etcd pins the etcd that the oldest supported Kubernetes release
// (../kube-floor) was released with.
package etcd

import _ "go.etcd.io/etcd/server/v3"
