#!/usr/bin/env bash
# Makes the base images prevue's container tests and the compose reference
# app start from, since no registry can be reached: a minimal Debian 12
# (debootstrap --variant=minbase, from the mirror apt already uses) with
# python3 and PostgreSQL 15, imported as prevue/base:bookworm; and
# prevue/postgres:bookworm on it, which starts PostgreSQL the way the
# official image does (POSTGRES_USER, POSTGRES_PASSWORD, data in
# /var/lib/postgresql/data). One debootstrap for both: a second would cost
# CI minutes. Skipped when both tags exist. Needs a running Docker Engine.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/apt.sh

if ! docker info >/dev/null 2>&1; then
  echo "setup-images: no Docker Engine answers (docker info); container tests will be skipped" >&2
  exit 0
fi
base=prevue/base:bookworm
postgres=prevue/postgres:bookworm
if docker image inspect "$base" >/dev/null 2>&1 && docker image inspect "$postgres" >/dev/null 2>&1; then
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
echo "setup-images: building $base and $postgres from $mirror (debootstrap, a few minutes once)"
"${sudo_cmd[@]}" debootstrap --variant=minbase --include=python3,ca-certificates,postgresql-15 bookworm "$root" "$mirror" >/dev/null
# Debian's package made a cluster at install: a container makes its own at first start.
"${sudo_cmd[@]}" rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/lib/postgresql/15 "$root"/etc/postgresql/15
"${sudo_cmd[@]}" install -m 0755 scripts/lib/postgres-entrypoint.sh "$root"/usr/local/bin/postgres-entrypoint
"${sudo_cmd[@]}" tar -C "$root" -c . | docker import --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
# (The legacy builder, where buildx is missing, says it is deprecated: it still builds.)
docker build --quiet --tag "$postgres" - >/dev/null <<DOCKERFILE
FROM $base
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
DOCKERFILE
echo "setup-images: $base and $postgres ready"
