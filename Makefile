# guardchain: see README.md. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/guardchain/guardchain/internal/version.Version=$(VERSION)
BIN := bin
# A count, not a duration: Go 1.26's fuzz coordinator can report a spurious
# "context deadline exceeded" when a duration ends (golang/go#75804, fixed in 1.27).
FUZZTIME ?= 10000x

# Binaries the tests run, built from pinned modules into a cache (deploy/tools).
TOOLS ?= kube-apiserver etcd kubectl
UNIT_PKGS = $$($(GO) list ./... | grep -v /test/integration)

GOLANGCI_LINT_VERSION ?= v2.15.0
BENCHSTAT_VERSION ?= v0.0.0-20260908200009-22c9c6c9d4da

IMAGES_DIR ?= _out/images
E2E_TAG ?= e2e
KIND ?= kind
KEEP ?= 0
# E2E_RUN=regexp runs only the e2e tests it matches (go test -run); empty: all.
E2E_RUN ?=
E2E_RUN_FLAG = $(if $(E2E_RUN),-run '$(E2E_RUN)')

.PHONY: help build test test-unit test-integration test-integration-floor test-integration-bench fuzz-short lint bench bench-handler bench-load measure-emit demo demo-emit tools tools-dir \
	images images-oci e2e e2e-local drills study-poststart clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

build: ## static binaries in bin/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/initguards ./cmd/guardchain-webhook ./cmd/kubectl-guardchain

lint: ## golangci-lint, pinned, with .golangci.yml (gofmt, go vet, staticcheck, errcheck and more)
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION) run ./...

test-unit: ## unit, real-node and filesystem tests, with the race detector
	$(GO) test -race -count=1 $(UNIT_PKGS)

tools: ## build $(TOOLS) from the pinned modules in deploy/tools into the cache
	deploy/tools/build.sh $(TOOLS)

tools-dir: ## print the cache directory that holds the tools (make -s tools-dir)
	@deploy/tools/build.sh $(TOOLS)

test-integration: ## the webhook and chart through a real etcd + kube-apiserver of the newest release (builds them, kube-controller-manager and helm on first use)
	KUBEBUILDER_ASSETS=$$(deploy/tools/build.sh kube-apiserver kube-controller-manager etcd kubectl helm) $(GO) test -race -count=1 ./test/integration/...

test-integration-floor: ## the same tests against the oldest release guardchain supports (deploy/tools/kube-floor)
	KUBEBUILDER_ASSETS=$$(deploy/tools/build.sh --floor kube-apiserver kube-controller-manager etcd helm) GUARDCHAIN_KUBE_RELEASE=floor \
	  $(GO) test -race -count=1 ./test/integration/...

test-integration-bench: ## admission latency through the real API server, with and without guardchain
	KUBEBUILDER_ASSETS=$$(deploy/tools/build.sh kube-apiserver etcd kubectl) \
	  $(GO) test -run '^$$' -bench . -benchtime 500x -count 3 ./test/integration/

fuzz-short: ## a short run of every fuzz target from its committed seed corpus
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test $$pkg -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME); \
	  done; done

test: lint test-unit test-integration test-integration-floor fuzz-short ## lint, unit, control-plane (newest and oldest supported release) and fuzz tests (CI then runs e2e-local)

bench: ## benchmarks (each reported beside its baseline in the same run)
	$(GO) test -run '^$$' -bench . -benchmem $(UNIT_PKGS)

# A regexp of the reviews bench-handler serves (captured, or a name in webhook/testdata/reviews).
REVIEWS ?= .*
bench-handler: ## the admission handler in process beside its baselines, per review of the set (REVIEWS=regexp): 8 interleaved rounds, benchstat columns per path
	@mkdir -p _out; : > _out/bench-handler.txt; for i in $$(seq 8); do \
	  $(GO) test ./webhook -run '^$$' -bench '^BenchmarkReview$$/^review=($(REVIEWS))$$' -benchmem -cpu 1 -count 1 >> _out/bench-handler.txt || exit 1; done
	$(GO) run golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION) -col /path _out/bench-handler.txt

bench-load: build ## the webhook under load over TLS on 127.0.0.1 beside a baseline server, per review of the set (vegeta: 64 workers, 10 s measured, 5 rounds; LOAD_FLAGS=...)
	$(GO) build -o $(BIN)/load-baseline ./test/load/baseline
	$(GO) run ./test/load -webhook $(BIN)/guardchain-webhook -baseline $(BIN)/load-baseline $(LOAD_FLAGS)

measure-emit: build ## median wall time of the whole initguards process (first emit, re-emit) beside /bin/true, 300 runs each
	@med() { for i in $$(seq 300); do s=$$(date +%s%N); "$$@" >/dev/null; echo $$(( $$(date +%s%N) - s )); done | sort -n | sed -n 150p; }; \
	d=$$(mktemp -d); mkdir -p $$(seq -f "$$d/%g" 300); first() { bin/initguards emit --dir "$$d/$$i"; }; \
	t=$$(med /bin/true); f=$$(med first); bin/initguards emit --dir "$$d" >/dev/null; r=$$(med bin/initguards emit --dir "$$d"); rm -rf "$$d"; \
	echo "median: /bin/true $$((t/1000)) us, first emit $$((f/1000)) us, re-emit $$((r/1000)) us; initguards $$(stat -c %s bin/initguards) bytes"

demo: build ## the main job: inject the OpenShell sandbox example offline, no cluster needed
	$(BIN)/guardchain-webhook inject -f deploy/examples/openshell-sandbox-pod.yaml

demo-emit: build ## emit the guard chain into a scratch directory, verify it and list it
	@d=$$(mktemp -d) && $(BIN)/initguards emit --dir "$$d" --ownership uid:$$(id -u) && \
	  $(BIN)/initguards verify --dir "$$d" --ownership uid:$$(id -u) && ls -l "$$d" && \
	  $(BIN)/initguards print chain && rm -rf "$$d"

images: ## docker buildx: multi-arch webhook and init images (IMAGE_PREFIX, E2E_TAG, PLATFORMS; needs Docker)
	docker buildx build -f Dockerfile.webhook --platform $${PLATFORMS:-linux/amd64,linux/arm64} --build-arg VERSION=$(VERSION) \
	  -t $${IMAGE_PREFIX:-ghcr.io/guardchain}/guardchain-webhook:$(E2E_TAG) $${PUSH:+--push} .
	docker buildx build -f Dockerfile.init --platform $${PLATFORMS:-linux/amd64,linux/arm64} --build-arg VERSION=$(VERSION) \
	  -t $${IMAGE_PREFIX:-ghcr.io/guardchain}/initguards:$(E2E_TAG) $${PUSH:+--push} .

images-oci: ## the same images as OCI archives without Docker (umoci), plus the e2e node, OpenShell supervisor stand-in and pause images
	deploy/images/build.sh $(IMAGES_DIR) $(E2E_TAG)

e2e: ## kind (needs Docker and kind; KIND=path): create a cluster, load the images, run the e2e suite, delete it (KEEP=1 keeps it; E2E_RUN=regexp picks tests)
	@mkdir -p _out
	$(KIND) create cluster --config deploy/kind/cluster.yaml --kubeconfig _out/kind.kubeconfig
	set -e; trap '[ "$(KEEP)" = 1 ] || $(KIND) delete cluster --name guardchain-e2e' EXIT; \
	for f in Dockerfile.webhook:guardchain-webhook Dockerfile.init:initguards test/e2e/Dockerfile.node-sandbox:node-sandbox test/e2e/Dockerfile.nemoclaw-sandbox:nemoclaw-sandbox \
	    test/e2e/Dockerfile.openshell-supervisor:openshell-supervisor; do \
	  docker buildx build --load -f $${f%%:*} -t localhost/guardchain/$${f##*:}:$(E2E_TAG) . ; \
	  $(KIND) load docker-image --name guardchain-e2e localhost/guardchain/$${f##*:}:$(E2E_TAG); done; \
	KUBECONFIG=$(CURDIR)/_out/kind.kubeconfig GUARDCHAIN_E2E_TOOLS=$$(deploy/tools/build.sh kubectl helm) \
	  GUARDCHAIN_E2E_AGENT_SANDBOX=$$(deploy/tools/build-agent-sandbox.sh) \
	  GUARDCHAIN_E2E_PULL_POLICY=IfNotPresent $(GO) test -tags e2e -count=1 -v -timeout 20m -skip '^TestDrills$$' $(E2E_RUN_FLAG) ./test/e2e/

# local-session runs $(1) against a fresh local cluster (deploy/local) with the
# images imported, KUBECONFIG and the tools set, and always tears it down. One
# session at a time on this machine: a lock on the cluster's state directory.
LOCAL_TOOLS = kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl etcd helm containerd
define local-session
	@exec 9>"$${GUARDCHAIN_LOCAL_STATE:-/tmp/guardchain-local}.lock" && flock -w 3600 9 && \
	tools=$$(deploy/tools/build.sh $(LOCAL_TOOLS)) && agent_sandbox=$$(deploy/tools/build-agent-sandbox.sh) && \
	start=$$(date +%s) && deploy/images/build.sh $(IMAGES_DIR) $(E2E_TAG) && echo "$@: images $$(( $$(date +%s) - start )) s" && \
	trap 'deploy/local/cluster.sh down' EXIT && \
	start=$$(date +%s) && TOOLS=$$tools deploy/local/cluster.sh up $(IMAGES_DIR) 9>&- && echo "$@: cluster up $$(( $$(date +%s) - start )) s" && \
	start=$$(date +%s) && KUBECONFIG=$${GUARDCHAIN_LOCAL_STATE:-/tmp/guardchain-local}/admin.kubeconfig GUARDCHAIN_E2E_TOOLS=$$tools \
	  GUARDCHAIN_E2E_AGENT_SANDBOX=$$agent_sandbox \
	  GUARDCHAIN_E2E_VALUES=$(CURDIR)/deploy/local/values.yaml TOOLS=$$tools $(1) && \
	echo "$@: suite $$(( $$(date +%s) - start )) s"
endef

e2e-local: ## the e2e suite on a real single-node cluster on this machine (root; see deploy/local; E2E_RUN=regexp picks tests)
	$(call local-session,$(GO) test -tags e2e -count=1 -v -timeout 20m -skip '^TestDrills$$' $(E2E_RUN_FLAG) ./test/e2e/)

study-poststart: ## the native-sidecar postStart start path tried on the local cluster: pod create to Ready beside the shipped path, and each fault (docs/configuration.md: "Studied, not shipped"; STUDY_ONLY=ready|1|2|3|4, STUDY_N=pods per variant)
	$(call local-session,$(GO) test -tags e2e,study -count=1 -v -timeout 40m -run '^TestPostStartStudy$$' ./test/e2e/)

DRILLS ?= ^TestDrills$$
drills: ## fault drills on the local cluster: 2 replicas under a burst of pod creates through rollouts, upgrades, cert rotation, SIGKILL, API server restart (DRILLS=regexp picks some)
	$(call local-session,GUARDCHAIN_DRILLS_CLUSTER=$(CURDIR)/deploy/local/cluster.sh $(GO) test -tags e2e -count=1 -v -timeout 30m -run '$(DRILLS)' ./test/e2e/)

clean:
	rm -rf $(BIN) _out
