#!/usr/bin/env bash
# Makes the base images prevue's container tests and the compose reference
# app start from, since no registry can be reached: a minimal Debian 12
# (debootstrap --variant=minbase, from the mirror apt already uses) with
# python3, imported as prevue/base:bookworm. Skipped when the tag exists.
# Needs a running Docker Engine (`docker info`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/apt.sh

tag=prevue/base:bookworm
if ! docker info >/dev/null 2>&1; then
  echo "setup-images: no Docker Engine answers (docker info); container tests will be skipped" >&2
  exit 0
fi
if docker image inspect "$tag" >/dev/null 2>&1; then
  exit 0
fi
install_packages debootstrap

# The mirror apt already uses (deb822 sources first, then sources.list).
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[[ -z $mirror ]] && mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

sudo_cmd=()
[[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
root=$(mktemp -d /tmp/prevue-base.XXXXXX)
trap '"${sudo_cmd[@]}" rm -rf "$root"' EXIT
echo "setup-images: building $tag from $mirror (debootstrap, a few minutes once)"
"${sudo_cmd[@]}" debootstrap --variant=minbase --include=python3,ca-certificates bookworm "$root" "$mirror" >/dev/null
"${sudo_cmd[@]}" rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
"${sudo_cmd[@]}" tar -C "$root" -c . | docker import --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
echo "setup-images: $tag ready"
