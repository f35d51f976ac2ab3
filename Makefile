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

# The core packages run under the race detector and with invariant checks.
CORE_PKGS  := ./engine/... ./multiraft/... ./shard/...
OTHER_PKGS  = $(shell $(GO) list ./... | grep -v -E '/(engine|multiraft|shard)(/|$$)')
PROTO_FILES = $(wildcard rpc/flotillapb/*.proto)

.PHONY: all build test testrace lint proto bench run clean help

all: build

help:
	@echo "make build     build bin/flotilla"
	@echo "make test      unit tests; -race and invariants on $(CORE_PKGS) (what CI runs)"
	@echo "make testrace  every package under the race detector"
	@echo "make lint      go vet, gofmt check, staticcheck $(STATICCHECK_VERSION)"
	@echo "make proto     regenerate rpc/flotillapb from its .proto files"
	@echo "make bench     Go benchmarks (BENCH=regexp, COUNT=n, PKGS=packages)"
	@echo "make run       run Flotilla locally"

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/flotilla ./cmd/flotilla

test:
	$(GO) test -race -tags invariants -count=1 -timeout 15m $(CORE_PKGS)
	$(GO) test -count=1 -timeout 15m $(OTHER_PKGS)

testrace:
	$(GO) test -race -tags invariants -count=1 -timeout 30m ./...

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
	PATH=$(abspath $(TOOLS)):$$PATH protoc -I rpc/flotillapb \
		--go_out=rpc/flotillapb --go_opt=paths=source_relative \
		--go-grpc_out=rpc/flotillapb --go-grpc_opt=paths=source_relative \
		$(PROTO_FILES)

BENCH ?= .
COUNT ?= 1
PKGS  ?= ./...
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count $(COUNT) $(PKGS)

# Until the cluster exists (the cluster issue), there is nothing to run: say
# so plainly and succeed, so that `make run` always works.
run: build
	@echo "Flotilla $(VERSION): the storage engine is built; a runnable node or cluster is not yet."
	@echo "'make run' will start a local 3-node cluster ('flotilla demo') once the cluster issue lands."
	@echo "Today you can inspect a store with: $(BIN)/flotilla debug keys --store DIR"

clean:
	rm -rf $(BIN)
