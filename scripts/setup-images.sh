#!/usr/bin/env bash
# Makes the base images prevue's container tests and the compose reference
# app start from, since no registry can be reached: a minimal Debian 12
# (debootstrap --variant=minbase, from the mirror apt already uses) with
# python3, imported as prevue/base:bookworm; and the same with PostgreSQL 15
# as prevue/postgres:bookworm, started the way the official image is
# (POSTGRES_USER, POSTGRES_PASSWORD, data in /var/lib/postgresql/data).
# Each is skipped when its tag exists. Needs a running Docker Engine.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/apt.sh

if ! docker info >/dev/null 2>&1; then
  echo "setup-images: no Docker Engine answers (docker info); container tests will be skipped" >&2
  exit 0
fi
base=prevue/base:bookworm
postgres=prevue/postgres:bookworm
missing=()
for tag in "$base" "$postgres"; do
  docker image inspect "$tag" >/dev/null 2>&1 || missing+=("$tag")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
install_packages debootstrap

# The mirror apt already uses (deb822 sources first, then sources.list).
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[[ -z $mirror ]] && mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

sudo_cmd=()
[[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
roots=()
trap 'for r in "${roots[@]}"; do "${sudo_cmd[@]}" rm -rf "$r"; done' EXIT

# debootstrap a minimal Debian 12 with these extra packages into a new directory.
make_root() {
  local root
  root=$(mktemp -d /tmp/prevue-image.XXXXXX)
  roots+=("$root")
  "${sudo_cmd[@]}" debootstrap --variant=minbase --include="$1" bookworm "$root" "$mirror" >/dev/null
  "${sudo_cmd[@]}" rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  made_root=$root
}

for tag in "${missing[@]}"; do
  echo "setup-images: building $tag from $mirror (debootstrap, a few minutes once)"
  if [[ $tag == "$base" ]]; then
    make_root python3,ca-certificates
    "${sudo_cmd[@]}" tar -C "$made_root" -c . | docker import --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
  else
    make_root python3,ca-certificates,postgresql-15
    # Debian's package made a cluster at install: the container makes its own at first start.
    "${sudo_cmd[@]}" rm -rf "$made_root"/var/lib/postgresql/15 "$made_root"/etc/postgresql/15
    "${sudo_cmd[@]}" install -m 0755 scripts/lib/postgres-entrypoint.sh "$made_root"/usr/local/bin/postgres-entrypoint
    "${sudo_cmd[@]}" tar -C "$made_root" -c . |
      docker import --change 'ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]' --change 'EXPOSE 5432' \
        --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$tag" >/dev/null
  fi
  echo "setup-images: $tag ready"
done
