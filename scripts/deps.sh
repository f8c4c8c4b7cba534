#!/usr/bin/env bash
# Installs what Butakero needs at run time (ffmpeg, ffprobe, yt-dlp) when it
# is missing. Idempotent: a machine that has them is left alone.
set -euo pipefail

need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
command -v yt-dlp >/dev/null 2>&1 || need+=(yt-dlp)

if [ "${#need[@]}" -gt 0 ]; then
  echo "deps: installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

command -v go >/dev/null 2>&1 || { echo "deps: Go 1.26 or newer is required (https://go.dev/dl/)" >&2; exit 1; }
