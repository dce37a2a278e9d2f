# learnlink — every target is one short line; README.md documents them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := .venv
PY_PINS     := moto[server]==5.2.5 cfn-lint==1.58.0 aws-sam-cli==1.170.0 cargo-lambda==1.9.2 schemathesis==4.32.5
STAMP       := $(VENV)/.installed-$(shell echo '$(PY_PINS)' | md5sum | cut -c1-12)
NPM_STAMP   := tests/conformance/node_modules/.installed
BIN         := target/debug
export SAM_CLI_TELEMETRY := 0
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup bins up down demo test lint build deploy bench fuzz chaos clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-7s %s\n", $$1, $$2}'

setup: $(STAMP) $(NPM_STAMP) ## install what the stack and the checks need (idempotent)

$(STAMP):
	python3 -m venv $(VENV) && $(VENV)/bin/pip install --quiet $(PY_PINS) && touch $@

$(NPM_STAMP): tests/conformance/package-lock.json
	cd tests/conformance && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed

bins: ## build every binary (functions, local runtime, emulators, demo)
	cargo build --workspace --bins

up: setup bins ## start the local stack; endpoints go to .learnlink/stack.env
	$(BIN)/learnlink-local up

down: ## stop the local stack (by pid)
	@if [ -x $(BIN)/learnlink-local ]; then $(BIN)/learnlink-local down; else echo "nothing to stop"; fi

demo: up ## run jobs 1, 2 and 3 end to end on the local stack and print a summary
	$(BIN)/learnlink-demo

test: setup bins ## unit + end-to-end tests, lints, cfn-lint and sam validate
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	RUST_BACKTRACE=0 cargo nextest run --workspace --profile ci -E 'not test(=no_secret_in_any_log_line)'
	RUST_BACKTRACE=0 cargo nextest run -p learnlink-e2e --profile ci -E 'test(=no_secret_in_any_log_line)'
	cfn-lint infra/template.yaml
	sam validate --lint --template infra/template.yaml

lint: setup ## formatting, clippy, cfn-lint
	cargo fmt --all --check && cargo clippy --workspace --all-targets -- -D warnings && cfn-lint infra/template.yaml

build: setup ## sam build (arm64) and target/lambda-zips/<Function>.zip for the six functions
	cd infra && sam build --beta-features --build-dir ../target/sam-build && cd .. && infra/zip-functions.sh

deploy: build ## sam deploy --guided
	cd infra && sam deploy --guided --template-file ../target/sam-build/template.yaml

bench: setup valgrind ## benchmarks (release): BENCH lines, also .learnlink/bench.json; ONLY=<group>
	cargo build --release --workspace --bins && LEARNLINK_BIN_DIR=target/release target/release/learnlink-bench $(ONLY)

chaos: setup bins ## chaos run (release): N LMS events (default 100000) under injected faults; CHAOS lines
	cargo build --release --workspace --bins && LEARNLINK_BIN_DIR=target/release target/release/learnlink-chaos $(N)

fuzz: ## cargo fuzz, every target FUZZ_SECONDS (600) s each: FUZZ lines; fails on a crash
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	fuzz/run.sh

.PHONY: valgrind
valgrind: # callgrind counts the core's instructions for `make bench` (installed once)
	@command -v valgrind >/dev/null || { S=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$S apt-get update -qq && $$S env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }

clean: down ## remove build output and local state
	cargo clean && rm -rf .learnlink
