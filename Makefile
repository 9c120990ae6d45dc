# kvconf: `make example` renders the bundled example; `make test` runs every test.
GO ?= go

.PHONY: all build example test test-unit test-integration deps vet lint bench fuzz clean

all: build

build:
	$(GO) build -o bin/kvconf ./cmd/kvconf

## example: render conf.d/ from examples/data.yaml into ./out (no server needed)
example:
	$(GO) run ./cmd/kvconf -config-file examples/kvconf.toml -onetime
	@echo; for f in out/*; do echo "== $$f"; cat "$$f"; done

## test: unit and integration tests (installs HAProxy, nginx and keepalived when run as root, builds consul once)
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
	bin="$$(GO=$(GO) ./scripts/consul-bin)" && export CONSUL_BIN="$$bin" && cd test && $(GO) test -race -count=1 ./...

## fuzz: every fuzz target for FUZZTIME (default 20s) each, seeded from its package's testdata
## (scripts/fuzz; FUZZ_KEEP=1 keeps the new interesting inputs in <pkg>/testdata/fuzz/). A new fuzz
## target (grep -rn '^func Fuzz') is added to FUZZ_TARGETS, as pkg:Name: the script checks the list.
FUZZTIME ?= 20s
FUZZ_TARGETS = \
	./backends/consul:FuzzIsClean \
	./backends/consul:FuzzPairs \
	./backends/consul:FuzzParseListing \
	./backends/file:FuzzFlatten \
	./backends/metadata:FuzzFlatten \
	./resource:FuzzKeyJoin \
	./resource:FuzzLoadResource \
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
