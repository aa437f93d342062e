# flowd — the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
BIN     := bin/flowd
PKGS    := ./...
SHELL   := /bin/bash
# Stamped into the binary (flowd --version); outside a git checkout, "dev".
VERSION ?= $(shell git describe --tags --always --dirty --match 'v*' 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
DATE    ?= $(shell TZ=UTC git log -1 --date=format-local:%Y-%m-%dT%H:%M:%SZ --format=%cd 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
export VERSION COMMIT DATE

.PHONY: build run test unit e2e lint bench soak docs services-up services-down clean deploy-check dist

build:
	$(GO) build -ldflags="$(LDFLAGS)" -o $(BIN) ./cmd/flowd

## dist: release tarballs for linux amd64/arm64/armv7 (static), CycloneDX SBOMs,
## SHA256SUMS, in out/dist; deploy/README.md says how to verify and build the image
DIST_DIR ?= out/dist
dist:
	deploy/dist.sh $(DIST_DIR)

## run: the demo pipeline, no external services, live progress on a terminal
run: build
	./$(BIN) run pipelines/demo.hcl

## test: every test; installs and starts the real servers the e2e tests need
test: build lint docs-check deploy-check
	@# Required secrets get placeholders (pipelines/validate.env): validation
	@# must not depend on secrets, and a forgotten one must still fail a real run's.
	@set -a; . pipelines/validate.env; set +a; for f in pipelines/*.hcl pipelines/*/*.hcl; do [ -e "$$f" ] || continue; echo "validate $$f"; ./$(BIN) validate "$$f" >/dev/null || exit 1; done
	@# The e2e package stops and restarts the shared servers (outage tests), so it
	@# runs after the other packages instead of beside them.
	svc="$$(e2e/services.sh up)" && eval "$$svc" && \
	  FLOWD_TEST_STRICT=1 FLOWD_BIN=$(CURDIR)/$(BIN) $(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v '/e2e$$') && \
	  FLOWD_TEST_STRICT=1 FLOWD_BIN=$(CURDIR)/$(BIN) $(GO) test -race -count=1 -timeout 40m -parallel 4 ./e2e/...

## unit: the tests that need no external server (those skip, saying why)
unit: build
	FLOWD_BIN=$(CURDIR)/$(BIN) $(GO) test -race -count=1 $(PKGS)

lint:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) run ./cmd/flowd fmt -check pipelines

## docs: regenerate the component and codec references from the specs
docs:
	$(GO) run ./cmd/flowd components --markdown docs/components
	$(GO) run ./cmd/flowd codecs --markdown docs/codecs

docs-check:
	@tmp=$$(mktemp -d); $(GO) run ./cmd/flowd components --markdown $$tmp && diff -ru docs/components $$tmp || { echo "docs/components is stale: run make docs"; exit 1; }; rm -rf $$tmp
	@tmp=$$(mktemp -d); $(GO) run ./cmd/flowd codecs --markdown $$tmp && diff -ru docs/codecs $$tmp || { echo "docs/codecs is stale: run make docs"; exit 1; }; rm -rf $$tmp

## deploy-check: make dist's tarballs, checksums, SBOMs and binaries (--version), helm lint + template, kubeconform against
## offline Kubernetes schemas, the chart's pipelines validated, the systemd unit verified
deploy-check:
	deploy/check.sh

## bench: every benchmark scenario at full length (flowd bench, JSON in out/bench/), then the Go micro-benchmarks (-benchmem)
BENCH_SCENARIOS ?= engine kafka_json kafka_json_batch aio-single aio-multi trackers neuron max max-engine peer smart-meters smart-meters-stress modbus modbus-10hz peer-modbus sparkplug
BENCH_DURATION  ?= 60s
bench: build
	@mkdir -p out/bench
	svc="$$(e2e/services.sh up)" && eval "$$svc" && for s in $(BENCH_SCENARIOS); do \
	  echo "== flowd bench --duration $(BENCH_DURATION) $$s"; \
	  ./$(BIN) bench --duration $(BENCH_DURATION) --json $$s > out/bench/$$s.json 2> out/bench/$$s.log; rc=$$?; \
	  cat out/bench/$$s.json; [ $$rc -eq 0 ] || { echo "flowd bench $$s failed (exit $$rc), see out/bench/$$s.log"; fail=1; }; \
	done; [ -z "$$fail" ]
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

## soak: long-running tests (long outages, soaks); not part of make test
soak: build
	svc="$$(e2e/services.sh up)" && eval "$$svc" && FLOWD_SOAK=1 $(GO) test -count=1 -timeout 120m -run 'Soak|KafkaSourceGroupKill' ./e2e/...

services-up:
	e2e/services.sh up

services-down:
	e2e/services.sh down

clean:
	rm -rf bin out
