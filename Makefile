# The Makefile is the contract for humans and CI; the README names the same targets.
GO       ?= go
PKGS     := ./...
FUZZTIME ?= 10s

.PHONY: all build demo test unit lint fmt generate check-generated bench fuzz tidy

all: lint test

build: ## build bin/switchyard
	$(GO) build -o bin/switchyard ./cmd/switchyard

demo: ## run the router in front of a simulated fleet
	$(GO) run ./cmd/switchyard demo

test: lint generate ## everything CI runs: lint, generated-code check, all tests under -race
	$(GO) test -race -count=1 $(PKGS)

unit: ## quick tests without -race
	$(GO) test -count=1 $(PKGS)

lint: ## go vet and gofmt
	$(GO) vet $(PKGS)
	@bad=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); \
	if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go' | grep -v '^gen/')

generate: ## regenerate gen/ from proto/ with buf (local plugins), then fail if gen/ changed: commit it
	scripts/check-generated.sh

check-generated: generate

bench: ## side-by-side benchmarks that print tables
	$(GO) test -run '^$$' -bench . -benchtime 1x ./bench/

fuzz: ## run each fuzz target for FUZZTIME
	$(GO) test -run '^$$' -fuzz FuzzPeek -fuzztime $(FUZZTIME) ./router/openai/
	$(GO) test -run '^$$' -fuzz FuzzDecodeInferRequest -fuzztime $(FUZZTIME) ./router/kserve/
	$(GO) test -run '^$$' -fuzz FuzzParseMetrics -fuzztime $(FUZZTIME) ./backends/

tidy:
	$(GO) mod tidy
