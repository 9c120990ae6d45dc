# kvconf: `make build` builds a static bin/kvconf and bin/kvconf-backend-redis; `make example` renders the bundled example; `make test` runs every test.
GO ?= go
# The binary make build writes.
BIN ?= bin/kvconf
# The release version -version prints (git describe of a tag); empty, it
# prints the module version and the VCS revision the go command stamps.
VERSION ?= $(shell git describe --tags --dirty 2>/dev/null)
# The VCS revision, its time and whether the tree has changes, stamped
# with the linker (so that they hold even with GOFLAGS=-buildvcs=false).
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
REVTIME ?= $(shell TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null)
MODIFIED ?= $(shell git diff --quiet HEAD 2>/dev/null || echo true)
LDFLAGS = -X github.com/kvconf/kvconf/cli.version=$(VERSION) -X github.com/kvconf/kvconf/cli.revision=$(REVISION) \
	-X github.com/kvconf/kvconf/cli.revTime=$(REVTIME) -X github.com/kvconf/kvconf/cli.modified=$(MODIFIED)

.PHONY: all build version example test test-unit test-integration deps vet lint bench fuzz clean

all: build

## build: a static binary (CGO_ENABLED=0: runs on scratch or alpine) in $(BIN), and beside it the plugins of plugins/ (kvconf-backend-redis: -backend redis finds it there)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/kvconf
	CGO_ENABLED=0 $(GO) build -trimpath -o $(dir $(BIN))kvconf-backend-redis ./plugins/kvconf-backend-redis

## version: the version make build stamps (empty without a git tag)
version:
	@echo "$(VERSION)"

## example: render conf.d/ from examples/data.yaml into ./out (no server needed)
example:
	$(GO) run ./cmd/kvconf -config-file examples/kvconf.toml -onetime
	@echo; for f in out/*; do echo "== $$f"; cat "$$f"; done

## test: unit and integration tests (installs haproxy, nginx, keepalived and redis-server from the Debian mirror when run as root, builds consul once from the Go module proxy into ~/.cache/kvconf)
test: deps vet test-unit test-integration fuzz

deps:
	@./scripts/test-deps

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	cd test && $(GO) vet ./...

test-unit:
	$(GO) test -race -count=1 ./...

test-integration:
	bin="$$(GO=$(GO) ./scripts/consul-bin)" && export CONSUL_BIN="$$bin" && vbin="$$(GO=$(GO) ./scripts/vault-bin)" && export VAULT_BIN="$$vbin" && cd test && $(GO) test -race -count=1 ./...

## fuzz: every fuzz target for FUZZTIME (default 20s) each, seeded from its package's testdata
## (scripts/fuzz; FUZZ_KEEP=1 keeps the new interesting inputs in <pkg>/testdata/fuzz/). A new fuzz
## target (grep -rn '^func Fuzz') is added to FUZZ_TARGETS, as pkg:Name: the script checks the list.
FUZZTIME ?= 20s
FUZZ_TARGETS = \
	./appliers/haproxy:FuzzParseHAProxy \
	./backends/consul:FuzzIsClean \
	./backends/consul:FuzzPairs \
	./backends/consul/internal/kvlisting:FuzzParseListing \
	./backends/file:FuzzFlatten \
	./backends/metadata:FuzzFlatten \
	./backends/zookeeper/zkwire:FuzzDecode \
	./resource:FuzzKeyJoin \
	./resource:FuzzLoadResource \
	./resource:FuzzQuotePaths \
	./template:FuzzFastPath \
	./template:FuzzRender
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) FUZZ_KEEP=$(FUZZ_KEEP) ./scripts/fuzz $(FUZZ_TARGETS)

## lint: golangci-lint with the linters of STYLE.md (.golangci.yml)
lint:
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0 run ./...
	cd test && $(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0 run --config ../.golangci.yml ./...

## bench: Go benchmarks of the store, templates and rendering
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./funcs/ ./template/ ./resource/

clean:
	rm -rf bin out
