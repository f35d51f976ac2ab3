# Flotilla's build. `make test` is what CI runs (.ci/run); see README.md.

GO          ?= go
BIN         := bin
TOOLS       := $(BIN)/tools
VERSION     ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X main.version=$(VERSION)

# Pinned tool versions. Tools come from the Go module proxy (and protoc from
# Debian's protobuf-compiler); nothing is installed by hand.
STATICCHECK_VERSION        := v0.8.2
PROTOC_GEN_GO_VERSION      := v1.36.11
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
PROTOC_VERSION             := 3.21.12

# Every package but the benchmark tool's runs under the race detector and
# with invariant checks: the core packages, the client (root), the node
# (server), the placement driver and the command's end-to-end tests.
CORE_PKGS  := . ./engine/... ./multiraft/... ./shard/... ./rpc/... ./router/... ./server/... ./placement/... ./cmd/... ./internal/... ./examples/...
OTHER_PKGS  = $(shell $(GO) list ./... | grep -E '/bench(/|$$)')
PROTO_FILES = $(wildcard rpc/flotillapb/*.proto)

.PHONY: all build test testrace fuzz lint proto proto-check bench bench-idle run clean help

all: build

help:
	@echo "make build     build bin/flotilla"
	@echo "make test      unit tests; -race and invariants on $(CORE_PKGS) (what CI runs)"
	@echo "make testrace  every package under the race detector"
	@echo "make fuzz      run every Fuzz target for FUZZTIME each (default $(FUZZTIME)); make test runs their seed corpora"
	@echo "make lint      go vet, gofmt check, staticcheck $(STATICCHECK_VERSION)"
	@echo "make proto     regenerate rpc/flotillapb from its .proto files"
	@echo "make proto-check  regenerate and fail if the committed code differs (CI)"
	@echo "make bench     Go benchmarks (BENCH=regexp, COUNT=n, PKGS=packages)"
	@echo "make run       a local 3-node demo cluster (flotilla demo; RUN_ARGS=flags)"
	@echo "make etcd      bin/etcd, for side-by-side benchmarks (bench/peers/etcd)"
	@echo "make bench-suite  the standard suite, Flotilla and etcd (bench/suite/run.sh; settings: docs/BENCHMARKS.md)"
	@echo "make bench-ab BASE=path/to/flotilla  this build against another, interleaved (bench/suite/ab.sh)"
	@echo "make bench-idle  what many idle ranges cost 3 nodes: up-replication time, CPU, RSS (bench/suite/idle.sh)"

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/flotilla ./cmd/flotilla

test:
	$(GO) test -race -tags invariants -count=1 -timeout 15m $(CORE_PKGS)
	$(GO) test -count=1 -timeout 15m $(OTHER_PKGS)

testrace:
	$(GO) test -race -tags invariants -count=1 -timeout 30m ./...

# Every Fuzz target of the module, found in the test files, fuzzed for
# FUZZTIME each (FUZZ=regexp picks targets by name). `make test` runs only
# their seed corpora (testdata/fuzz and f.Add). A crasher is written to the
# package's testdata/fuzz/NAME: commit it with the fix.
FUZZTIME ?= 30s
FUZZ     ?= .
fuzz:
	@set -e; for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for name in $$(grep -h '^func Fuzz' $$dir/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/' | grep -E '$(FUZZ)'); do \
	    echo "== $$dir $$name ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$dir; \
	  done; \
	done

lint:
	$(GO) vet ./...
	$(GO) vet -tags invariants ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go') | grep -v '\.pb\.go$$'); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

$(TOOLS)/protoc-gen-go:
	GOBIN=$(abspath $(TOOLS)) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(abspath $(TOOLS)) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

proto: $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc
	@if [ -z "$(PROTO_FILES)" ]; then echo "no .proto files in rpc/flotillapb yet: nothing to generate"; exit 0; fi; \
	command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler (pinned $(PROTOC_VERSION))"; exit 1; }; \
	protoc --version | grep -q "$(PROTOC_VERSION)" || { echo "protoc $(PROTOC_VERSION) required, found $$(protoc --version)"; exit 1; }; \
	PATH=$(abspath $(TOOLS)):$$PATH protoc -I rpc \
		--go_out=rpc --go_opt=paths=source_relative \
		--go-grpc_out=rpc --go-grpc_opt=paths=source_relative \
		$(PROTO_FILES)

# proto-check regenerates the code and fails if that changed anything: the
# committed code must be what the pinned tools generate from the .proto files.
proto-check: proto
	@git diff --exit-code --stat -- rpc/flotillapb || { echo "rpc/flotillapb: generated code is stale: run 'make proto' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- rpc/flotillapb)" || { echo "rpc/flotillapb: untracked generated files:"; git status --porcelain -- rpc/flotillapb; exit 1; }

BENCH ?= .
COUNT ?= 1
PKGS  ?= ./...
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count $(COUNT) $(PKGS)

# bin/etcd: etcd's server, for side-by-side benchmarks, at the version
# bench/peers/etcd/go.mod pins, built from the Go module proxy as a module
# of its own so that Flotilla's module needs only etcd's client. See
# bench/peers/etcd/README.md for a local 3-member cluster.
.PHONY: etcd
etcd:
	cd bench/peers/etcd && $(GO) build -o ../../../$(BIN)/etcd .

# The standard benchmark suite (bench/suite/run.sh): etcd and Flotilla with
# 1 and RANGES ranges, 3 members/nodes each on loopback, one store at a
# time; reports in OUT (default bench-results/<date-time>). Settings come
# from the environment: RECORDS, VALUE_SIZE, DURATION, CLIENTS, WORKLOADS,
# RANGES, STORES, LOAD_CLIENTS, READY_TIMEOUT, OUT; see docs/BENCHMARKS.md.
.PHONY: bench-suite
bench-suite: build etcd
	bench/suite/run.sh

# Two builds side by side (bench/suite/ab.sh): BASE is the flotilla binary
# to compare bin/flotilla against; both clusters run at once and the
# workloads alternate between them, so the machine's drift hits both.
.PHONY: bench-ab
bench-ab: build
	BASE=$(BASE) bench/suite/ab.sh

bench-idle: build
	bench/suite/idle.sh

# A secure 3-node cluster in one process on 127.0.0.1:7400-7402 (HTTPS
# 7480-7482), data in a temporary directory; Ctrl-C stops it. Its throwaway
# CA and certificates are kept in DEMO_CERTS (made on first use), so that
# clients can use them: export FLOTILLA_CERTS_DIR=$(DEMO_CERTS). RUN_ARGS
# passes flags to `flotilla demo` (e.g. RUN_ARGS='--base-port 0' for free
# ports, RUN_ARGS=--insecure for plaintext).
RUN_ARGS ?=
DEMO_CERTS ?= $(CURDIR)/.demo-certs
run: build
	$(BIN)/flotilla demo $(if $(filter --insecure --insecure=true,$(RUN_ARGS)),,--certs-dir '$(DEMO_CERTS)') $(RUN_ARGS)

clean:
	rm -rf $(BIN)
