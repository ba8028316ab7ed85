# The two set-up commands of the README:
#   make run    install what is missing, build, start meterd with the demo catalog
#   make test   install what is missing, build, run every test (what CI runs)
SHELL := /bin/bash
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
JOBS ?= $(shell nproc)
PORT ?= 8080
DATA ?= data

.PHONY: all deps build run test lint unit-asan e2e-asan e2e-postgresql tsan fuzz-smoke js-deps clean

# Sanitizer runs. A report fails the run: the sanitizers abort (ASan, UBSan) or exit non-zero
# (TSan), and tests/lib/meterd_harness.py raises when a server's or meterctl's stderr holds one.
ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
TSAN_ENV := TSAN_OPTIONS=halt_on_error=0:second_deadlock_stack=1
# The unit tests with threads: the group-commit writer under the service (ServiceTest, store
# failures, admin handler), signing-key stores, throttling, fault injection and its delay queue,
# the SigV4 key cache, catalog publication, the HTTP server (RequestReaderTest), the embedded
# store's writer, syncer and readers, group-commit seals and the API handler's held answers.
TSAN_UNIT_FILTER := Stores/ServiceTest.*:ServiceStoreFailureTest.*:AdminHandlerTest.*:MemoryStoreTest.*:FileStoreTest.*:ThrottlerTest.*:FaultInjectorTest.*:DelayQueueTest.*:SigV4Cache.*:CatalogHolderTest.*:RequestReaderTest.*:WalCheckpointerTest.*:EmbeddedStoreTest.*:SealTest.*:ApiHandlerAuditTest.*

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@scripts/run-demo.sh $(BUILD)/bin/meterd $(PORT) $(DATA)

# The npm packages of the JS end-to-end tests (AWS SDK v3) and of the browser tests
# (playwright-core, which drives Debian's Chromium; it never downloads a browser). The console's
# own packages are installed by the build (CMakeLists.txt, target console).
js-deps: deps
	@for dir in tests/js tests/browser; do \
	  (cd $$dir && (npm ci --no-audit --no-fund --loglevel=error >/dev/null || npm ci --no-audit --no-fund)) || exit 1; \
	done

lint: build
	@scripts/lint.sh $(BUILD)

unit-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMETERD_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS) --target meterd_unit_tests meterd meterctl
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(ASAN_BUILD)/bin/meterd_unit_tests --gtest_brief=1

# The protocol cases and every end-to-end Python suite against the ASan+UBSan meterd and
# meterctl (about 8 minutes on 2 cores; the release run is in ctest).
e2e-asan: unit-asan
	@echo "e2e-asan: protocol cases and tests/e2e on $(ASAN_BUILD)/bin/meterd"
	@$(ASAN_ENV) python3 tests/protocol/run_cases.py --meterd $(ASAN_BUILD)/bin/meterd
	@$(ASAN_ENV) METERD_BIN=$(CURDIR)/$(ASAN_BUILD)/bin/meterd METERCTL_BIN=$(CURDIR)/$(ASAN_BUILD)/bin/meterctl \
	  python3 -m unittest discover -s tests/e2e -t .

# The end-to-end suites a second time, on the PostgreSQL store backend: the protocol cases, every
# Python suite of tests/e2e (the kill test included: meterd is killed, PostgreSQL keeps running)
# and the JavaScript SDK tests, against the release meterd. Each line runs under its own throwaway
# PostgreSQL server (tests/lib/pg_server.py exec: initdb in a temp dir, stopped by PID at the
# end), and every meterd gets a database of its own. The SQLite pass is ctest's (e2e_python,
# e2e_js, protocol_cases).
PG_E2E_ENV := METERD_BIN=$(CURDIR)/$(BUILD)/bin/meterd METERCTL_BIN=$(CURDIR)/$(BUILD)/bin/meterctl
PG_EXEC := python3 tests/lib/pg_server.py exec --
e2e-postgresql: build js-deps
	@echo "e2e-postgresql: protocol cases, tests/e2e and tests/js on PostgreSQL ($(BUILD)/bin/meterd)"
	@$(PG_E2E_ENV) $(PG_EXEC) python3 tests/protocol/run_cases.py
	@$(PG_E2E_ENV) $(PG_EXEC) python3 -m unittest discover -s tests/e2e -t .
	@$(PG_E2E_ENV) $(PG_EXEC) node --test tests/js/

# ThreadSanitizer: the unit tests with threads, and racing clients against the TSan meterd.
tsan: deps
	@cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMETERD_TSAN=ON >/dev/null
	@cmake --build $(TSAN_BUILD) -j $(JOBS) --target meterd_unit_tests meterd
	@set -o pipefail; $(TSAN_ENV) $(TSAN_BUILD)/bin/meterd_unit_tests --gtest_brief=1 \
	  --gtest_filter='$(TSAN_UNIT_FILTER)' 2>&1 | tee $(TSAN_BUILD)/unit-tests.log
	@! grep -q "WARNING: ThreadSanitizer" $(TSAN_BUILD)/unit-tests.log
	@echo "tsan: tests/e2e/test_concurrency.py on $(TSAN_BUILD)/bin/meterd"
	@$(TSAN_ENV) METERD_BIN=$(CURDIR)/$(TSAN_BUILD)/bin/meterd python3 -m unittest tests.e2e.test_concurrency

fuzz-smoke: deps
	@CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMETERD_FUZZ=ON -DMETERD_SANITIZE=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers
	@scripts/fuzz.sh $(FUZZ_BUILD) 10

# ctest runs last so that its summary closes the output.
test: build js-deps
	@scripts/lint.sh $(BUILD)
	@$(MAKE) --no-print-directory e2e-asan
	@$(MAKE) --no-print-directory tsan
	@$(MAKE) --no-print-directory fuzz-smoke
	@$(MAKE) --no-print-directory e2e-postgresql
	@cd $(BUILD) && ctest --output-on-failure

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
