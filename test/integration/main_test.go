// Package integration tests the webhook through a real etcd and
// kube-apiserver (envtest, with binaries built by deploy/tools/build.sh):
// real admission, real validation, real PodSecurity. Run with
// KUBEBUILDER_ASSETS set (make test-integration does it, for the newest
// Kubernetes release; make test-integration-floor runs them on the oldest
// guardchain supports, with GUARDCHAIN_KUBE_RELEASE=floor).
package integration

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

var (
	restConfig *rest.Config
	clientset  *kubernetes.Clientset
	// serverVersion is the kube-apiserver's /version gitVersion.
	serverVersion string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "integration: KUBEBUILDER_ASSETS is not set; CI must run these tests (make test-integration)")
			return 1
		}
		fmt.Fprintln(os.Stderr, "integration: SKIP: KUBEBUILDER_ASSETS is not set (make test-integration builds the binaries and sets it)")
		return 0
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true), zap.Level(zapcore.ErrorLevel)))
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: starting etcd and kube-apiserver: %v\n", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "integration: stopping: %v\n", err)
		}
	}()
	restConfig = rest.CopyConfig(cfg)
	restConfig.WarningHandler = rest.NoWarnings{} // tests that read warnings use their own client
	clientset, err = kubernetes.NewForConfig(restConfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	v, err := clientset.Discovery().ServerVersion()
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: reading the API server's version: %v\n", err)
		return 1
	}
	serverVersion = v.GitVersion
	fmt.Fprintf(os.Stderr, "integration: kube-apiserver %s\n", serverVersion)
	return m.Run()
}
