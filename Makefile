# Makefile -- the newcomer's commands.  A thin wrapper around meson/ninja
# (the build itself is meson.build): `make deps`, `make build`, `make run`,
# `make test`, `make check`, `make sanitize`, `make valgrind`, `make bench`.
#
# BUILD and ASAN_BUILD name the build directories; override them to keep a
# private tree, e.g. `make check BUILD=build-mine`.

BUILD ?= build
ASAN_BUILD ?= build-asan
MESON ?= meson
NINJA ?= ninja

# Debian 12 packages the build, the tests, `make run` and `make bench`
# need.  The only list: the Dockerfile installs the -dev subset of it.
DEB_PACKAGES := meson ninja-build pkg-config gcc libevent-dev libssl-dev \
	libyaml-dev libmsgpack-dev libjansson-dev libpsl-dev publicsuffix check \
	libnghttp2-dev python3-h2 \
	valgrind curl nginx-light wrk python3 python3-aiohttp python3-websockets \
	iproute2 python3-yaml systemd groff-base man-db \
	libprotobuf-c-dev protobuf-c-compiler zlib1g-dev protobuf-compiler \
	python3-protobuf openssl \
	gnuplot-nox \
	prometheus python3-prometheus-client \
	nghttp2-client

# With CI set, warnings are errors: meson.build adds -Werror when CI is set
# at configure time, and -Dwerror=true keeps that through the reconfigures
# ninja runs itself (whose environment may lack CI).
MESON_SETUP_FLAGS := $(if $(CI),-Dwerror=true)

# The W3C Trace Context suite and its runner (not vendored here): beside
# the repository, as CI lays it out.  `make w3c W3C_DIR=/path` elsewhere.
W3C_DIR ?= $(CURDIR)/../shared/conformance/w3c

ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

.PHONY: all deps build run test check e2e interop w3c sanitize valgrind bench bench-ir \
	chaos chaos-short soak soak-short fuzz fuzz-deps clean format-check help

all: build

help:
	@echo "make deps          install the Debian packages listed in DEB_PACKAGES"
	@echo "make build         configure ($(BUILD)/) and compile"
	@echo "make run           demo backend + gateway on 127.0.0.1:8080, Ctrl-C stops"
	@echo "make test          every meson suite, then the e2e and interop suites"
	@echo "make interop       dd-trace and OpenTelemetry backends continue our traces"
	@echo "make w3c           W3C Trace Context suite through the gateway (W3C_DIR)"
	@echo "make check         unit, integration and lint suites only"
	@echo "make sanitize      unit + integration under ASan + UBSan ($(ASAN_BUILD)/)"
	@echo "make valgrind      unit suites under valgrind"
	@echo "make bench         wrk: tracestitch against nginx (slow, not in test)"
	@echo "make bench-ir      instructions per request (callgrind) against nginx or BASE=dir"
	@echo "make chaos         every fault scenario, long form, beside nginx (slow)"
	@echo "make chaos-short   the same scenarios in seconds (part of test)"
	@echo "make soak          mixed load for SOAK_MINUTES (30), CSV + SVG + trend"
	@echo "make soak-short    a 1-minute soak (part of test)"
	@echo "make fuzz HOURS=N  N CPU-hours of libFuzzer (ASan + UBSan) over every"
	@echo "                   harness, merged into tests/fuzz/corpus, report in"
	@echo "                   $(FUZZ_BUILD)/fuzz-report.md (FUZZ_JOBS, default 1)"
	@echo "make format-check  clang-format --dry-run on src/"
	@echo "make clean         remove $(BUILD)/ and $(ASAN_BUILD)/"

# Nothing but dpkg-query when everything is there; apt-get only for what
# is missing, and only as root.
deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
		s=$$(dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null) || s=""; \
		case "$$s" in \
		*" ok installed") ;; \
		*) missing="$$missing $$p" ;; \
		esac; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	echo "deps: missing Debian packages:$$missing"; \
	if [ "$$(id -u)" -ne 0 ]; then \
		echo "deps: run as root, or:"; \
		echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends$$missing"; \
		exit 1; \
	fi; \
	apt-get update && \
	DEBIAN_FRONTEND=noninteractive apt-get install -y \
	    --no-install-recommends $$missing

# Configure once; ninja re-runs meson itself when a meson.build changes.
# meson.build turns on -Werror when CI is set at configure time.
build: deps
	@if [ ! -f $(BUILD)/build.ninja ]; then \
		$(MESON) setup $(MESON_SETUP_FLAGS) $(BUILD); \
	fi
	$(NINJA) -C $(BUILD)

run: build
	BUILD=$(BUILD) tests/support/run-demo.sh

test: build
	$(MESON) test -C $(BUILD) --print-errorlogs
	@$(MAKE) --no-print-directory w3c BUILD=$(BUILD)
	@$(MAKE) --no-print-directory e2e BUILD=$(BUILD)
	@$(MAKE) --no-print-directory interop BUILD=$(BUILD)
	@$(MAKE) --no-print-directory chaos-short BUILD=$(BUILD)
	@$(MAKE) --no-print-directory soak-short BUILD=$(BUILD)

# Hook for the browser end-to-end suite (Chromium + RUM SDK + dd-trace).
e2e:
	@if [ -f tests/e2e/run.sh ]; then \
		BUILD=$(BUILD) bash tests/e2e/run.sh; \
	else \
		echo "e2e: tests/e2e/run.sh not present yet, skipped"; \
	fi

# The W3C Trace Context suite (SPEC_LEVEL 2, STRICT_LEVEL 2, fan-out)
# through the gateway; all 41 cases must pass.  Without the suite at
# W3C_DIR it skips with a message, or fails when CI is set.
w3c: build
	BUILD=$(BUILD) W3C_DIR=$(W3C_DIR) bash tests/w3c/run.sh

# Real tracer libraries (npm: dd-trace, @opentelemetry/core) behind the
# gateway; run.sh skips with a message when node or npm is missing.
interop:
	BUILD=$(BUILD) bash tests/interop/run.sh

check: build
	$(MESON) test -C $(BUILD) --suite unit --suite integration --suite lint \
	    --print-errorlogs

sanitize: deps
	@if [ ! -f $(ASAN_BUILD)/build.ninja ]; then \
		$(MESON) setup $(MESON_SETUP_FLAGS) $(ASAN_BUILD) \
		    -Db_sanitize=address,undefined \
		    -Db_lundef=false; \
	fi
	$(NINJA) -C $(ASAN_BUILD)
	$(ASAN_ENV) $(MESON) test -C $(ASAN_BUILD) --suite unit \
	    --suite integration --print-errorlogs

valgrind: build
	$(MESON) test -C $(BUILD) --setup valgrind --suite unit \
	    --print-errorlogs

bench: build
	BUILD=$(BUILD) tests/bench/run.sh

# Instructions per request under callgrind (deterministic: no hardware
# counters here, and wall-clock CPU moves with the neighbours), against
# nginx by default or against another build: make bench-ir BASE=dir.
BASE ?= nginx
bench-ir: build
	BUILD=$(BUILD) /usr/bin/python3 tests/bench/ir.py --base $(BASE)

# The proving ground (issue 16, docs/reliability.md): each fault scenario
# against the built gateway while normal clients run, nginx beside it.
# Results: $(BUILD)/chaos-results.md.  The long form takes several minutes;
# chaos-short (in test, about 1.5 minutes) runs each scenario for seconds
# with fewer connections and without nginx.
chaos: build
	BUILD=$(BUILD) python3 tests/chaos/chaos.py

chaos-short: build
	BUILD=$(BUILD) python3 tests/chaos/chaos.py --short --no-nginx

# A mixed load for SOAK_MINUTES (default 30): RSS, fds and CPU per request
# each minute into $(BUILD)/soak.csv, plotted to $(BUILD)/soak.svg, and a
# trend check.  soak-short (in test) runs 3 minutes with 10 s samples.
SOAK_MINUTES ?= 30
soak: build
	BUILD=$(BUILD) SOAK_MINUTES=$(SOAK_MINUTES) python3 tests/chaos/soak.py

soak-short: build
	BUILD=$(BUILD) SOAK_MINUTES=3 SOAK_SAMPLE_S=10 python3 tests/chaos/soak.py

# The fuzzing budget (issue 16, tests/fuzz/README.md): HOURS CPU-hours
# shared by every fuzz_* harness of a clang -Dfuzzing=true build
# ($(FUZZ_BUILD)/, set up on first use), FUZZ_JOBS processes per harness,
# new edges merged into tests/fuzz/corpus (capped), the report in
# $(FUZZ_BUILD)/fuzz-report.md and .tsv.  Not part of test; its packages
# are not in DEB_PACKAGES (`make deps` installs them only for this target).
FUZZ_BUILD ?= build-fuzz
FUZZ_JOBS ?= 1
FUZZ_DEB_PACKAGES := clang libclang-rt-14-dev llvm
fuzz-deps:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(DEB_PACKAGES) $(FUZZ_DEB_PACKAGES)"

fuzz: fuzz-deps
	@if [ -z "$(HOURS)" ]; then \
		echo "fuzz: HOURS=N is required (CPU-hours, e.g. HOURS=0.01)"; \
		exit 2; \
	fi
	HOURS=$(HOURS) FUZZ_JOBS=$(FUZZ_JOBS) FUZZ_BUILD=$(FUZZ_BUILD) \
	    python3 tests/fuzz/fuzz-budget.py

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

# Not part of `test` yet: the tree is still being brought to .clang-format.
format-check:
	@command -v clang-format >/dev/null 2>&1 || { \
		echo "format-check: clang-format not found" \
		    "(apt-get install clang-format)"; exit 1; }
	find src -name '*.[ch]' -print0 | sort -z | \
	    xargs -0 clang-format --dry-run -Werror
