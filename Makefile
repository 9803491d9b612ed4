# Gatehouse. `make help` lists the targets.

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/gatehouse-dev/gatehouse/cmd/gatehouse/app.version=$(VERSION)
BIN       := $(CURDIR)/bin/gatehouse
# The image's binary leaves out `gatehouse clickhouse` (a development tool whose library loader
# needs the C library): it is then static.
IMAGE_TAGS := gatehouse_noclickhouse
TOOLS     := $(GO) tool -modfile=$(CURDIR)/scripts/tools/go.mod
# The race detector is on for the test suite; RACE= turns it off.
RACE      ?= -race
# Test packages run at once (one per core), the slowest first, so that the short ones fill the
# cores at the end. One more than the cores ran the tests in about two thirds of the time, but a
# run with TEST_P=3 on 2 cores once lost its drills' ClickHouse server (the engine aborted, cause
# not known).
TEST_P    ?= $(shell nproc 2>/dev/null || echo 1)
TEST_PKGS ?= ./test/e2e ./test/drills ./...
# Benchmark runs per case: the ratios are medians over them. BENCH selects benchmarks (go test
# -bench regexp, taken literally, e.g. BENCH='ProxyGet$|Admission'), BENCH_PKGS packages,
# BENCH_TIME each run's length.
BENCH_COUNT ?= 3
BENCH       ?= .
BENCH_PKGS  ?= ./...
BENCH_TIME  ?= 1s
# Where make bench writes its report as JSON, and the raw output (benchstat's input format).
BENCH_REPORT ?= $(CURDIR)/bin/bench-report.json
BENCH_RAW    ?= $(CURDIR)/bin/bench-raw.txt
# The test bed's paths (kube-apiserver, etcd, kubectl and older kubectl releases, the ClickHouse
# engine, Dex, helm), from the one script that knows them.
TESTBED_ENV = eval "$$(scripts/testbed.sh env)" && export GATEHOUSE_BIN=$(BIN)

.PHONY: help demo build image test drills scale bench lint generate testbed clean

help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Extra flags for gatehouse dev, e.g. DEMO_ARGS="--dir /tmp/gh --proxy-address 127.0.0.1:9443".
DEMO_ARGS ?=

demo: ## The whole system on this machine, with a scripted agent session (gatehouse dev --scenario); Ctrl-C stops it.
	scripts/install-deps.sh
	@$(MAKE) --no-print-directory testbed build
	$(TESTBED_ENV) && $(BIN) dev --scenario $(DEMO_ARGS)

build: ## Build bin/gatehouse (without cgo, as the image's binary, which shares its build cache).
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/gatehouse

image: ## Build the container image without a Docker engine: OCI layout bin/image, tarball bin/gatehouse-image.tar.
	CGO_ENABLED=0 $(GO) build -trimpath -tags $(IMAGE_TAGS) -ldflags '-s -w $(LDFLAGS)' -o bin/image-gatehouse ./cmd/gatehouse
	$(GO) run ./scripts/image -binary bin/image-gatehouse -version $(VERSION) -layout bin/image -tarball bin/gatehouse-image.tar

testbed: ## Build or fetch, and cache, the real components the tests run against.
	scripts/testbed.sh all

test: testbed build ## Run every test: unit, integration and end-to-end, against the real components.
	$(TESTBED_ENV) && $(GO) test $(RACE) -p $(TEST_P) -count=1 -timeout 30m $(TEST_PKGS)

drills: testbed build ## Run the audit path's fault drills at full length; print lost / duplicated / unrecorded per drill.
	@mkdir -p bin
	@($(TESTBED_ENV) && GATEHOUSE_DRILLS=full $(GO) test -count=1 -timeout 60m -v -run '^TestDrill' ./test/drills/; \
		echo $$? >bin/drills.rc) 2>&1 | tee bin/drills.log | grep --line-buffered -E '^(=== RUN|--- |DRILL|FAIL|ok|PASS)|_test.go'
	@echo; echo "Drill results (full log: bin/drills.log):"; grep '^DRILL' bin/drills.log || true
	@exit $$(cat bin/drills.rc)

# Audit events the scale check generates.
SCALE_ROWS ?= 10000000

scale: testbed build ## Generate SCALE_ROWS (10 million) audit events with scripts/gentrail and time every canned query: each must take ClickHouse under 1 s of CPU.
	$(TESTBED_ENV) && GATEHOUSE_SCALE_ROWS=$(SCALE_ROWS) $(GO) test -count=1 -timeout 90m -v -run '^TestCannedQueriesAtScale$$' ./scripts/gentrail/

# A failed benchmark fails make bench after the report (pipefail needs bash).
bench: SHELL := /bin/bash
bench: testbed build ## Run the benchmarks (BENCH=regexp) and report each as a ratio to its baseline in the same run.
	@mkdir -p $(dir $(BENCH_REPORT)) $(dir $(BENCH_RAW))
	$(TESTBED_ENV) && set -o pipefail && $(GO) test -run '^$$' -bench '$(value BENCH)' -benchtime $(BENCH_TIME) -benchmem \
		-count $(BENCH_COUNT) -timeout 90m $(BENCH_PKGS) \
		| $(GO) run ./scripts/benchratio -json $(BENCH_REPORT) -raw $(BENCH_RAW)

lint: ## gofmt, go vet and staticcheck.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@if grep -rnE 'Director|NewSingleHostReverseProxy' --include='*.go' authn/ proxy/; then \
		echo "the proxy must use ReverseProxy.Rewrite, never Director (see proxy/doc.go)"; exit 1; fi
	@# With the tests' -race, go vet and staticcheck (whose go list compiles the packages it
	@# checks for their export data) compile the dependencies as make test does: on a cold build
	@# cache the three share one compile of each. GOFLAGS reaches only staticcheck's go list,
	@# not the build of staticcheck itself.
	$(GO) vet $(RACE) ./...
	@sc=$$($(TOOLS) -n staticcheck) && echo "GOFLAGS=$(RACE) staticcheck ./..." && \
		GOFLAGS="$$GOFLAGS $(RACE)" "$$sc" ./...

generate: ## Generate the API types' deepcopy code and CRD (controller-gen), and render manifests/ from charts/gatehouse (helm).
	$(TOOLS) controller-gen object paths=./policy/v1alpha1/... crd:crdVersions=v1 output:crd:dir=charts/gatehouse/crds paths=./policy/v1alpha1/...
	scripts/testbed.sh helm
	$(TESTBED_ENV) && $(GO) run ./charts/render

clean: ## Remove build output (the component cache stays; see scripts/testbed.sh).
	rm -rf bin
