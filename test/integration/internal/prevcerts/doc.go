// Package prevcerts is the self-managed certificate code of the previous
// release (commit 4b05e25, package certs: selfmanaged.go and pki.go, as they
// were but for the package name and this comment). It keeps its CA in the
// chart's <fullname>-tls Secret. The control-plane tests run it beside this
// release's certs package to check upgrades from that release and rollbacks
// to it; nothing else may import it, and it is not to be changed.
package prevcerts
