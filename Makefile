# The two set-up commands of the README:
#   make run    install what is missing, build, start meterd with the demo catalog
#   make test   install what is missing, build, run every test (what CI runs)
SHELL := /bin/bash
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS ?= $(shell nproc)
PORT ?= 8080
DATA ?= data

.PHONY: all deps build run test lint unit-asan fuzz-smoke js-deps clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@scripts/run-demo.sh $(BUILD)/bin/meterd $(PORT) $(DATA)

js-deps: deps
	@cd tests/js && (npm ci --no-audit --no-fund --loglevel=error >/dev/null || npm ci --no-audit --no-fund)

lint: build
	@scripts/lint.sh $(BUILD)

unit-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMETERD_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS) --target meterd_unit_tests
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(ASAN_BUILD)/bin/meterd_unit_tests --gtest_brief=1

fuzz-smoke: deps
	@CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMETERD_FUZZ=ON -DMETERD_SANITIZE=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers
	@scripts/fuzz.sh $(FUZZ_BUILD) 10

# ctest runs last so that its summary closes the output.
test: build js-deps
	@scripts/lint.sh $(BUILD)
	@$(MAKE) --no-print-directory unit-asan
	@$(MAKE) --no-print-directory fuzz-smoke
	@cd $(BUILD) && ctest --output-on-failure

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
