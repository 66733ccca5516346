# The two commands of the Quick start are `make up` and `make test`; each installs whatever is missing first.
SHELL := /bin/bash
ROOT  := $(CURDIR)
export PATH := $(ROOT)/.tools/node/bin:$(PATH)

# `make up` loads the demo by itself on a fresh data folder; `make demo` loads (or completes) it again.
.PHONY: setup up demo down status test test-unit test-int typecheck lint cycles bench

setup:
	@scripts/setup.sh

up: setup
	@bin/ehr stack up

# Demo patients, orders, images and one login per role (development only; docs/first-run.md).
demo: setup
	@bin/ehr demo

down:
	@bin/ehr stack down

status:
	@bin/ehr stack status

typecheck: setup
	npx tsc -p tsconfig.json

lint: setup
	npx biome check .

# No import cycles between modules nor between folders (.dependency-cruiser.json; dependency-cruiser with swc).
cycles: setup
	npm run --silent check:cycles

test: setup
	npx tsc -p tsconfig.json
	npx biome check .
	npm run --silent check:cycles
	npx vitest run

# One suite, or some files of it: make test-int TESTS=tests/foundation.int.test.ts
test-unit: setup
	npx vitest run --project unit $(TESTS)

test-int: setup
	npx vitest run --project int $(TESTS)

# Benchmarks (docs/benchmarks.md): facade against direct Orthanc on a throwaway, CPU-pinned stack; writes bench/RESULTS.md.
# BENCH_SCALE=small for a short smoke run. The harness itself runs on CPU 1 (the client CPU).
bench: setup
	taskset -c 1 node --disable-warning=ExperimentalWarning bench/run.ts
