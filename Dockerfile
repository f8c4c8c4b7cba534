# Butakero's image: one binary that runs the all-in-one (the default), any
# one service alone (`gateway`, `resolver`, `fetcher`, `encoder`,
# `recorder`) or a NATS node (`nats-server …`), with ffmpeg, a current
# yt-dlp and the JavaScript runtime yt-dlp uses for YouTube (QuickJS).
#
#   docker build -t butakero:1.0.0 --build-arg BUTAKERO_VERSION=1.0.0 .
#   docker run -p 8080:8080 butakero:1.0.0            # the all-in-one
#   docker run butakero:1.0.0 fetcher                  # one service, NATS_URL set
#
# Build arguments (every image and toolchain is pinned; see README "Deploy"):
#   GO_IMAGE, RUNTIME_IMAGE   the build stage's and the runtime's base images
#   BUTAKERO_VERSION          what `versions` logs and GET /v1/info report
#   YTDLP_SOURCE              debian-unstable (default: Debian unstable's yt-dlp
#                             on the stable base, by apt pinning) or pypi
#   YTDLP_VERSION             empty: the newest the source has at build time;
#                             else that version (2026.10.26)
#   UNSTABLE_CHECK_VALID_UNTIL  yes; "no" only for a mirror that serves a
#                             frozen snapshot of unstable whose Release expired
#
# Podman keeps HEALTHCHECK only in the docker format: podman build --format docker.

ARG GO_IMAGE=docker.io/library/golang:1.26.8-trixie
ARG RUNTIME_IMAGE=docker.io/library/debian:13.8-slim

# --- build: a static binary -------------------------------------------------
FROM ${GO_IMAGE} AS build
WORKDIR /src
# The modules and the build cache live in cache mounts: a rebuild after a
# source change downloads nothing and compiles only what changed.
COPY . .
ARG BUTAKERO_VERSION=devel
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false \
    go build -trimpath \
      -ldflags "-s -w -X github.com/butakero/butakero/platform/runtime/versions.Butakero=${BUTAKERO_VERSION}" \
      -o /out/butakero ./cmd/butakero

# --- runtime: Debian stable, ffmpeg, yt-dlp, Node.js, tini ------------------
FROM ${RUNTIME_IMAGE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG YTDLP_SOURCE=debian-unstable
ARG YTDLP_VERSION=
ARG UNSTABLE_CHECK_VALID_UNTIL=yes
# Build time only: the image keeps no DEBIAN_FRONTEND.
ARG DEBIAN_FRONTEND=noninteractive
# Debian stable's yt-dlp is too old for YouTube within months of a release:
# yt-dlp comes from unstable (pinned to that one package: everything else,
# its Python dependencies included, stays on the stable release), or from
# PyPI into its own virtual environment.
#
# yt-dlp solves YouTube's JavaScript challenges with deno, node 22 or later,
# QuickJS or bun. Debian stable's nodejs is 20, which yt-dlp refuses (and
# unstable's needs a newer libc than stable's), so the runtime is Debian's
# QuickJS; YTDLP_JS_RUNTIMES and YTDLP_REMOTE_COMPONENTS below make the
# fetcher's yt-dlp use it and fetch the solver scripts Debian does not
# package.
#
# ffmpeg's package pulls in SDL and OpenGL for ffplay and the X11 devices,
# and with them Mesa's GPU drivers and LLVM (200 MB) that a server never
# loads: dpkg is told not to unpack those libraries (as slim images drop
# documentation), and the build checks that ffmpeg and ffprobe still find
# every library they link.
RUN set -eux; \
    printf '%s\n' '# GPU drivers a headless server never loads (see the Dockerfile).' \
      'path-exclude /usr/lib/*/libLLVM.so*' 'path-exclude /usr/lib/*/libgallium-*.so' \
      'path-exclude /usr/lib/*/libz3.so*' >/etc/dpkg/dpkg.cfg.d/butakero-headless; \
    base_pkgs="ca-certificates ffmpeg quickjs tini"; \
    case "$YTDLP_SOURCE" in \
      debian-unstable) \
        mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources | head -n1); \
        printf 'Types: deb\nURIs: %s\nSuites: unstable\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\nCheck-Valid-Until: %s\n' \
          "${mirror:-http://deb.debian.org/debian}" "$UNSTABLE_CHECK_VALID_UNTIL" >/etc/apt/sources.list.d/unstable.sources; \
        printf '%s\n' '# Only yt-dlp comes from unstable.' \
          'Package: *' 'Pin: release a=unstable' 'Pin-Priority: 100' '' \
          'Package: yt-dlp' 'Pin: release a=unstable' 'Pin-Priority: 990' >/etc/apt/preferences.d/yt-dlp-unstable; \
        apt-get update; \
        apt-get install -y --no-install-recommends $base_pkgs "yt-dlp${YTDLP_VERSION:+=${YTDLP_VERSION}*}"; \
        ;; \
      pypi) \
        apt-get update; \
        apt-get install -y --no-install-recommends $base_pkgs python3 python3-venv; \
        python3 -m venv /opt/yt-dlp; \
        /opt/yt-dlp/bin/pip install --no-cache-dir "yt-dlp[default]${YTDLP_VERSION:+==${YTDLP_VERSION}}"; \
        ln -s /opt/yt-dlp/bin/yt-dlp /usr/local/bin/yt-dlp; \
        ;; \
      *) echo "YTDLP_SOURCE must be debian-unstable or pypi, not $YTDLP_SOURCE" >&2; exit 1 ;; \
    esac; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log; \
    if ldd /usr/bin/ffmpeg /usr/bin/ffprobe /usr/bin/qjs | grep 'not found'; then exit 1; fi; \
    yt-dlp --version; ffmpeg -hide_banner -version | head -n1
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/butakero --no-create-home --shell /usr/sbin/nologin butakero && \
    install -d -o butakero -g butakero -m 0750 /var/lib/butakero
COPY --from=build /out/butakero /usr/local/bin/butakero
# The build fails here on a yt-dlp more than 90 days old, as every process
# would warn at start.
RUN butakero version -check

ENV DATA_DIR=/var/lib/butakero \
    HTTP_ADDR=:8080 \
    METRICS_ADDR=:9090 \
    YTDLP_JS_RUNTIMES=quickjs \
    YTDLP_REMOTE_COMPONENTS=ejs:github
WORKDIR /var/lib/butakero
USER 10001:10001
# 8080 the gateway (and the all-in-one), 9090 a service alone's /metrics and
# /healthz; 4222, 6222, 8222 a nats-server node's clients, routes, monitoring.
EXPOSE 8080 9090 4222 6222 8222
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["butakero", "healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/butakero"]
CMD ["serve"]
