#!/bin/bash
# run.sh -- `make e2e`: the real-browser end-to-end suite.  Installs Debian
# chromium when it is missing (as root; otherwise prints the command and
# fails), installs the npm packages of tests/e2e when node_modules is
# missing or package.json changed since the last install, checks the
# binaries of $BUILD, then runs every tests/e2e/*.test.mjs with node's test
# runner and ends with the line `e2e: N passed, N failed`.
#
# BUILD names the build directory (default: build), relative to the repo
# root or absolute.  E2E_VERBOSE=1 echoes every child process's output.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
REPO=$(pwd)
E2E=$REPO/tests/e2e
BUILD=${BUILD:-build}
case "$BUILD" in
/*) ;;
*) BUILD=$REPO/$BUILD ;;
esac
export BUILD
CHROMIUM=/usr/bin/chromium
# Bounds the whole run (the suite itself takes well under a minute).
SUITE_TIMEOUT=170

fail() {
	echo "e2e: $*" >&2
	echo "e2e: 0 passed, 1 failed"
	exit 1
}

# 1. Chromium from Debian (never a downloaded browser build).
if [ ! -x "$CHROMIUM" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "e2e: $CHROMIUM is missing; install it as root:" >&2
		echo "    sudo apt-get update && sudo apt-get install -y" \
		    "--no-install-recommends chromium" >&2
		fail "chromium missing"
	fi
	echo "e2e: installing chromium (apt-get)"
	{ apt-get update &&
	    DEBIAN_FRONTEND=noninteractive apt-get install -y \
	    --no-install-recommends chromium; } >"${TMPDIR:-/tmp}/e2e-apt.log" 2>&1 ||
	    { tail -20 "${TMPDIR:-/tmp}/e2e-apt.log" >&2; fail "apt-get install chromium failed"; }
	[ -x "$CHROMIUM" ] || fail "chromium installed but $CHROMIUM is missing"
fi

# 2. node and the npm packages (no lock file: tests/e2e/.npmrc).
command -v node >/dev/null 2>&1 || fail "node is missing (apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || fail "npm is missing (apt-get install npm)"
stamp=$E2E/node_modules/.e2e-package-json.sha256
want=$(sha256sum "$E2E/package.json" | cut -d' ' -f1)
have=$(cat "$stamp" 2>/dev/null || true)
if [ ! -d "$E2E/node_modules" ] || [ "$want" != "$have" ]; then
	echo "e2e: npm install (package.json changed or node_modules missing)"
	(cd "$E2E" && npm install --no-package-lock --no-audit --no-fund \
	    --loglevel=error) || fail "npm install failed"
	echo "$want" >"$stamp"
fi
for f in playwright-core dd-trace @msgpack/msgpack \
    @datadog/browser-rum/bundle/datadog-rum.js; do
	[ -e "$E2E/node_modules/$f" ] || fail "node_modules/$f missing after npm install"
done

# 3. The binaries under test.
for b in src/tracestitch tests/support/demo_backend; do
	[ -x "$BUILD/$b" ] || fail "$BUILD/$b not built (run: make build BUILD=$BUILD)"
done

# 4. The tests: spec report on the terminal, TAP to a file for the count.
tap=$(mktemp "${TMPDIR:-/tmp}/e2e-tap.XXXXXX")
trap 'rm -f "$tap"' EXIT
cd "$E2E" || exit 1
timeout --kill-after=10 "$SUITE_TIMEOUT" node --test --test-concurrency=1 \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$tap" \
    ./*.test.mjs
rc=$?
pass=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$tap" | tail -1)
failed=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$tap" | tail -1)
cancelled=$(sed -n 's/^# cancelled \([0-9]*\)$/\1/p' "$tap" | tail -1)
pass=${pass:-0}
failed=$((${failed:-0} + ${cancelled:-0}))
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
	echo "e2e: the suite ran past ${SUITE_TIMEOUT}s and was stopped" >&2
	[ "$failed" -gt 0 ] || failed=1
fi
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
	failed=1
fi
echo "e2e: $pass passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
