# gitorch's everyday targets. `make test` is the same command CI runs.
GO       ?= go
FUZZTIME ?= 5m

.PHONY: all build test lint bench fuzz corpus clean

all: lint build

build:
	$(GO) build -o bin/gitorch ./cmd/gitorch

# Installs the Debian packages the integration tests need (as root), then
# runs vet and every test.
test:
	./scripts/test.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Every Go benchmark of the repository (Git and containerd benchmarks need
# their tools; see README's performance section for each one's command).
bench:
	$(GO) test -run NONE -bench . -benchmem ./...

fuzz:
	$(GO) test -run NONE -fuzz FuzzLoad -fuzztime $(FUZZTIME) ./pkg/schema

# The kubernetes/examples compatibility table of docs/compatibility.md.
corpus:
	$(GO) test -v -run TestCorpus ./pkg/schema

clean:
	rm -rf bin
