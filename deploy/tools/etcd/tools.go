//go:build tools

// Package etcd pins the etcd that the test control plane runs.
package etcd

import _ "go.etcd.io/etcd/server/v3"
