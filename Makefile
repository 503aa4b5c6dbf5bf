# The two commands of the README: `make up` (local stack + live demo) and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
LOCAL := deploy/local
# The Python the interop tests decode our topics with (`make test` builds it).
INTEROP_VENV := .data/interop-venv
JAEGER_QUERY := http://127.0.0.1:$(or $(BRIDGE_JAEGER_QUERY_PORT),16686)

.PHONY: up down status test test-only test-tryton test-fuzz test-docs test-image test-kubernetes test-observability image fuzz lint bench build tools system clean-data

## up: start Kafka, the schema registry, the sims and the services, run the demo, then
## print a running summary of the live order flow until Ctrl-C, which stops everything
## (BRIDGE_UP_DETACH=1 leaves it running instead; `make down` stops it then)
up: build
	@if [ -z "$$BRIDGE_KEEP_DATA" ]; then bash $(LOCAL)/services.sh fresh; fi
	@bash $(LOCAL)/kafka.sh start
	@bash $(LOCAL)/registry.sh start
	@bash $(LOCAL)/jaeger.sh start
	@bash $(LOCAL)/services.sh start
	@echo
	@./target/debug/bridgectl demo
	@echo
	@bash $(LOCAL)/kafka.sh status; bash $(LOCAL)/registry.sh status; bash $(LOCAL)/jaeger.sh status; bash $(LOCAL)/services.sh status
	@echo
	@bash $(LOCAL)/demo-trace.sh
	@echo
	@echo "topics:  kcat -b 127.0.0.1:9092 -L      (or ./target/debug/bridgectl topics)"
	@echo "orders:  curl -s localhost:8090/sim/stats; kcat -b 127.0.0.1:9092 -C -t bridge.orders.v1 -e -q | wc -l"
	@echo "ERP:     curl -s localhost:8070/admin/stats; curl -s 'localhost:8070/api/sales-orders?size=3'"
	@echo "verdicts: kcat -b 127.0.0.1:9092 -C -t bridge.erp-results.v1 -e -q | wc -l"
	@echo "parked:  ./target/debug/bridgectl parked list erp-writer-parked"
	@echo "findings: ./target/debug/bridgectl findings   (a run every minute; now: ./target/debug/bridgectl reconcile; today: curl -s localhost:8096/summary)"
	@echo "metrics: curl -s localhost:8091/metrics | grep -E 'bridge_(records_out|ingest_|parked)'; curl -s localhost:8093/metrics | grep bridge_erp_; curl -s localhost:8094/metrics | grep bridge_reconciler_"
	@echo "traces:  curl -s '$(JAEGER_QUERY)/api/traces?service=erp-writer&limit=5'   (Jaeger's query API)"
	@echo "stop:    make down"
	@echo
	@if [ -n "$$BRIDGE_UP_DETACH" ]; then exit 0; fi; \
	  trap 'echo; echo "stopping ..."; $(MAKE) --no-print-directory down' EXIT; \
	  ./target/debug/bridgectl watch || true

## down: stop everything `make up` started (data stays in .data/)
down:
	@bash $(LOCAL)/services.sh stop
	@bash $(LOCAL)/jaeger.sh stop
	@bash $(LOCAL)/registry.sh stop
	@bash $(LOCAL)/kafka.sh stop

status:
	@bash $(LOCAL)/kafka.sh status; bash $(LOCAL)/registry.sh status; bash $(LOCAL)/jaeger.sh status; bash $(LOCAL)/services.sh status

## test: format check, clippy with -D warnings, every test against one real broker +
## registry started for this run (a plain `cargo test` starts one per test binary instead)
test: lint test-only
	@$(MAKE) --no-print-directory test-docs
	@$(MAKE) --no-print-directory test-image
	@$(MAKE) --no-print-directory test-kubernetes
	@$(MAKE) --no-print-directory test-observability
	@$(MAKE) --no-print-directory test-tryton
	@$(MAKE) --no-print-directory test-fuzz

## test-docs: every Mermaid diagram of the docs parsed by Mermaid's own parser (Node.js
## with npm; the pinned packages of tests/diagrams are installed into .data/diagrams)
DIAGRAMS := .data/diagrams
test-docs: $(DIAGRAMS)/node_modules/.installed
	cp tests/diagrams/check.mjs $(DIAGRAMS)/check.mjs
	node $(DIAGRAMS)/check.mjs README.md docs/architecture.md \
	  $$(grep -rl --include='*.md' --exclude-dir=.data --exclude-dir=target --exclude-dir=node_modules \
	    '```mermaid' . | grep -v -e '^./README.md$$' -e '^./docs/architecture.md$$')

$(DIAGRAMS)/node_modules/.installed: tests/diagrams/package.json tests/diagrams/package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing: install Node.js 18 or later with npm"; exit 1; }
	mkdir -p $(DIAGRAMS)
	cp tests/diagrams/package.json tests/diagrams/package-lock.json $(DIAGRAMS)/
	cd $(DIAGRAMS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

## image: the OCI image (every service binary and bridgectl, FROM scratch with exactly the
## libraries they link, non-root, CA bundle, OCI labels) with buildah, no daemon, no base
## pulled; prints its id and size (deploy/image/build.sh)
image: tools
	bash deploy/image/build.sh

## test-image: the same image from the debug binaries `make test` built, unpacked from its
## OCI layout and every binary run from it by chroot; one service against the test broker
TEST_IMAGE := localhost/magento-erp-bridge-test
test-image: build
	IMAGE_PROFILE=dev IMAGE_NAME=$(TEST_IMAGE) IMAGE_ROOTFS=.data/image/test-rootfs bash deploy/image/build.sh
	bash $(LOCAL)/test-stack.sh bash deploy/image/check.sh $(TEST_IMAGE):$$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1); \
	  status=$$?; buildah images --format "{{.Name}}:{{.Tag}}" | grep "^$(TEST_IMAGE):" | xargs -r buildah rmi -f >/dev/null; buildah rmi --prune >/dev/null 2>&1; rm -rf .data/image/test-rootfs; exit $$status

## test-kubernetes: render every overlay of deploy/kubernetes with kustomize, validate each
## object offline (Kubernetes OpenAPI schemas, the KEDA and Prometheus Operator CRDs), the
## review policies, then start each service of the dev overlay as its manifest says against
## the test broker (tests/kubernetes; the tools from the Go module proxy and PyPI into
## .data/kubernetes)
K8S_TOOLS := .data/kubernetes
test-kubernetes: build
	bash tests/kubernetes/tools.sh $(K8S_TOOLS)
	cd tests/kubernetes && BRIDGE_K8S_TOOLS=$(CURDIR)/$(K8S_TOOLS) BRIDGE_BIN_DIR=$(CURDIR)/target/debug \
	  bash $(CURDIR)/$(LOCAL)/test-stack.sh $(CURDIR)/$(K8S_TOOLS)/venv/bin/pytest -q -p no:cacheprovider .

## test-observability: the alert rules checked and unit-tested by promtool (one case
## that fires and one that does not per alert), the production PrometheusRule made from
## the same file, and a runbook section in docs/operations.md for every alert
test-observability: system
	bash tests/kubernetes/tools.sh $(K8S_TOOLS)
	promtool check rules deploy/observability/rules.yml
	cd deploy/observability && promtool test rules tests.yml
	$(K8S_TOOLS)/venv/bin/python deploy/observability/prometheusrule.py --check
	$(K8S_TOOLS)/venv/bin/python deploy/observability/runbooks.py

## test-fuzz: a short pass of every fuzz target (FUZZ_SHORT_RUNS executions each)
FUZZ_SHORT_RUNS ?= 20000
test-fuzz: system
	bash $(LOCAL)/fuzz.sh $(FUZZ_SHORT_RUNS)

## fuzz: every fuzz target for FUZZ_RUNS executions (1 M by default), corpora seeded from
## the fixtures; prints executions and crashes per target, fails on a crash
FUZZ_RUNS ?= 1000000
fuzz: system
	bash $(LOCAL)/fuzz.sh $(FUZZ_RUNS)

## test-tryton: install Tryton 8.0 in a venv (.data/tryton), start it, run the order flow
## against it (a handful of orders, then all of them again with lost state), stop it
test-tryton: build
	bash $(LOCAL)/tryton.sh start
	bash $(LOCAL)/test-stack.sh $(CARGO) test --workspace --test tryton -- --ignored; \
	  status=$$?; bash $(LOCAL)/tryton.sh stop; exit $$status

test-only: build $(INTEROP_VENV)/bin/python
	BRIDGE_TEST_PYTHON=$(CURDIR)/$(INTEROP_VENV)/bin/python \
	  bash $(LOCAL)/test-stack.sh $(CARGO) test --workspace --no-fail-fast

lint: system
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

build: tools
	$(CARGO) build --workspace --bins

## tools: install the missing Debian packages (deploy/local/system.sh: the C toolchain and
## headers librdkafka builds with, Java 17, Maven, Python) and the pinned broker jars
## and the tracing backend (Jaeger, built from its Go module) (each skipped when present)
tools: system
	@bash $(LOCAL)/kafka.sh install
	@bash $(LOCAL)/jaeger.sh install

## system: the missing Debian packages only (what lint needs: no broker jars)
system:
	@bash $(LOCAL)/system.sh install

## the Python the interop tests decode our topics with (fastavro, pinned)
$(INTEROP_VENV)/bin/python: tests/interop/requirements.txt
	python3 -m venv $(INTEROP_VENV)
	$(INTEROP_VENV)/bin/pip install -q -r tests/interop/requirements.txt
	touch $@

## bench: criterion (codec) and the throughput benchmark (runtime loops, inventory-aggregator,
## raw consume, the same count in Kafka Streams and the aggregation in Quix Streams side by side), against a broker + registry started for the run
QUIX_VENV := bench/.venv
KSTREAMS := bench/kstreams
KSTREAMS_BUILT := $(KSTREAMS)/target/classes/bench/KStreamsCount.class
bench: tools $(QUIX_VENV)/bin/python $(KSTREAMS_BUILT)
	BENCH_QUIX_PYTHON=$(CURDIR)/$(QUIX_VENV)/bin/python \
	BENCH_KSTREAMS_CLASSPATH='$(CURDIR)/$(KSTREAMS)/target/classes:$(CURDIR)/$(KSTREAMS)/target/dependency/*' \
	  bash $(LOCAL)/test-stack.sh $(CARGO) bench --workspace

## the stateful count in Kafka Streams (Maven Central jars, compiled with the JDK here)
$(KSTREAMS_BUILT): $(KSTREAMS)/pom.xml $(KSTREAMS)/src/main/java/bench/KStreamsCount.java
	mvn -B -q -f $(KSTREAMS)/pom.xml package dependency:copy-dependencies -DskipTests
	touch $@

$(QUIX_VENV)/bin/python: bench/requirements.txt
	python3 -m venv $(QUIX_VENV)
	$(QUIX_VENV)/bin/pip install -q -r bench/requirements.txt
	touch $@

clean-data: down
	rm -rf .data
