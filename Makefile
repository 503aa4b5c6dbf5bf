# The two commands of the README: `make up` (local stack + live demo) and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
LOCAL := deploy/local

.PHONY: up down status test test-only lint bench build tools clean-data

## up: start Kafka, the schema registry and the services, then run the demo
up: build
	@bash $(LOCAL)/kafka.sh start
	@bash $(LOCAL)/registry.sh start
	@bash $(LOCAL)/services.sh start
	@echo
	@./target/debug/bridgectl demo
	@echo
	@bash $(LOCAL)/kafka.sh status; bash $(LOCAL)/registry.sh status; bash $(LOCAL)/services.sh status
	@echo
	@echo "topics:  kcat -b 127.0.0.1:9092 -L      (or ./target/debug/bridgectl topics)"
	@echo "orders:  curl -s localhost:8090/sim/stats; kcat -b 127.0.0.1:9092 -C -t bridge.orders.v1 -e -q | wc -l"
	@echo "ingest:  curl -s localhost:8091/metrics | grep -E 'bridge_(records_out|ingest_|parked)'"
	@echo "stop:    make down"

## down: stop everything `make up` started (data stays in .data/)
down:
	@bash $(LOCAL)/services.sh stop
	@bash $(LOCAL)/registry.sh stop
	@bash $(LOCAL)/kafka.sh stop

status:
	@bash $(LOCAL)/kafka.sh status; bash $(LOCAL)/registry.sh status; bash $(LOCAL)/services.sh status

## test: format check, clippy with -D warnings, every test against one real broker +
## registry started for this run (a plain `cargo test` starts one per test binary instead)
test: lint build
	bash $(LOCAL)/test-stack.sh $(CARGO) test --workspace --no-fail-fast

test-only: build
	bash $(LOCAL)/test-stack.sh $(CARGO) test --workspace --no-fail-fast

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

build: tools
	$(CARGO) build --workspace --bins

## tools: install the pinned broker jars (skipped when present)
tools:
	@bash $(LOCAL)/kafka.sh install

## bench: criterion (codec) and the runtime throughput benchmark, against a broker +
## registry started for the run
bench: tools
	bash $(LOCAL)/test-stack.sh $(CARGO) bench --workspace

clean-data: down
	rm -rf .data
