# The Makefile is the contract for humans and CI; the README names the same targets.
GO       ?= go
PKGS     := ./...
FUZZTIME ?= 10s
CI_FUZZTIME ?= 3s

.PHONY: all build demo test unit lint fmt generate check-generated bench fuzz fuzz-ci tidy

all: lint test

build: ## build bin/switchyard
	$(GO) build -o bin/switchyard ./cmd/switchyard

demo: ## run the router in front of a simulated fleet
	$(GO) run ./cmd/switchyard demo

# deploy only decodes and checks manifests, with no concurrency of its own: it runs without
# -race, which spares CI a race-instrumented build of the Kubernetes and Gateway API types.
RACE_PKGS = $(shell $(GO) list $(PKGS) | grep -v '/deploy$$')

test: lint generate ## everything CI runs: lint, generated-code check, all tests (-race but for deploy), each fuzz target briefly
	$(GO) test -race -count=1 $(RACE_PKGS)
	$(GO) test -count=1 ./deploy/
	@$(MAKE) --no-print-directory fuzz-ci

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

# Every fuzz target, as PACKAGE:TARGET. `make test` runs each for CI_FUZZTIME on top of its
# seed corpus (which plain `go test` already runs); `make fuzz` runs each for FUZZTIME.
FUZZ_TARGETS := \
	./router/openai/:FuzzPeek \
	./router/openai/:FuzzRelaySSE \
	./router/openai/:FuzzUsage \
	./router/kserve/:FuzzDecodeInferRequest \
	./router/kserve/:FuzzValidateInferRequest \
	./router/kserve/:FuzzDecodeInferResponse \
	./internal/config/:FuzzParse \
	./policy/:FuzzVerify \
	./backends/:FuzzParseMetrics \
	./backends/:FuzzReadResponse

fuzz: ## run each fuzz target for FUZZTIME
	@for n in $$(grep -rhoE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+' . | sed 's/^func //'); do \
		case " $(FUZZ_TARGETS) " in *":$$n "*) ;; *) echo "fuzz target $$n is missing from FUZZ_TARGETS"; exit 1;; esac; \
	done
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

fuzz-ci: ## each fuzz target briefly, as `make test` does
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(CI_FUZZTIME)

tidy:
	$(GO) mod tidy
