// Package version holds the release version, set at build time with
// -ldflags "-X github.com/guardchain/guardchain/internal/version.Version=v1.2.3".
package version

// Version is the guardchain release; "dev" for local builds.
var Version = "dev"
