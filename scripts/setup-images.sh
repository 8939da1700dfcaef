#!/usr/bin/env bash
# Makes the base images prevue's container tests and the compose reference
# app start from, since no registry can be reached: a minimal Debian 12
# (debootstrap --variant=minbase, from the mirror apt already uses) with
# python3, imported as prevue/base:bookworm; and prevue/postgres:bookworm,
# the base with PostgreSQL 15, which starts it the way the official image
# does (POSTGRES_USER, POSTGRES_PASSWORD, data in /var/lib/postgresql/data).
# The base stays small: the kubernetes suite copies its images into the
# node. Each is skipped when its tag exists. Needs a running Docker Engine.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/apt.sh

if ! docker info >/dev/null 2>&1; then
  echo "setup-images: no Docker Engine answers (docker info); container tests will be skipped" >&2
  exit 0
fi
base=prevue/base:bookworm
postgres=prevue/postgres:bookworm
have() { docker image inspect "$1" >/dev/null 2>&1; }
have "$base" && have "$postgres" && exit 0
install_packages debootstrap

# The mirror apt already uses (deb822 sources first, then sources.list).
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[[ -z $mirror ]] && mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

sudo_cmd=()
[[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
scratch=$(mktemp -d /tmp/prevue-images.XXXXXX)
trap '"${sudo_cmd[@]}" rm -rf "$scratch"' EXIT

# A minimal Debian 12 with python3 and `$1`, imported as `$2` with the image settings that follow.
import_root() {
  local packages=$1 tag=$2
  shift 2
  local root="$scratch/root-${tag//[^a-z]/-}"
  mkdir -p "$root"
  "${sudo_cmd[@]}" debootstrap --variant=minbase --include="python3,ca-certificates$packages" bookworm "$root" "$mirror" >/dev/null
  # Debian's PostgreSQL package makes a cluster at install: a container makes its own at first start.
  "${sudo_cmd[@]}" rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/lib/postgresql/15 "$root"/etc/postgresql/15
  [[ -n $packages ]] && "${sudo_cmd[@]}" install -m 0755 scripts/lib/postgres-entrypoint.sh "$root"/usr/local/bin/postgres-entrypoint
  "${sudo_cmd[@]}" tar -C "$root" -c . | docker import "$@" - "$tag" >/dev/null
  "${sudo_cmd[@]}" rm -rf "$root"
}

if ! have "$base"; then
  echo "setup-images: building $base from $mirror (debootstrap, a few minutes once)"
  import_root "" "$base" --change 'CMD ["/bin/bash"]'
  echo "setup-images: $base ready"
fi
if ! have "$postgres"; then
  echo "setup-images: building $postgres (PostgreSQL 15 on $base)"
  pg_settings=(--change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
               --change 'EXPOSE 5432' --change 'ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]')
  mkdir -p "$scratch/postgres"
  cp scripts/lib/postgres-entrypoint.sh "$scratch/postgres/"
  cat >"$scratch/postgres/Dockerfile" <<DOCKERFILE
FROM $base
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null \\
 && rm -rf /var/lib/apt/lists/* /var/lib/postgresql/15 /etc/postgresql/15
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
DOCKERFILE
  # On the base, with apt in a container (a minute); where containers cannot
  # reach the mirror, a debootstrap of its own (a few). The legacy builder,
  # where buildx is missing, says it is deprecated: it still builds.
  if ! docker build --quiet --tag "$postgres" "$scratch/postgres" >/dev/null 2>"$scratch/build.err"; then
    echo "setup-images: apt in a container failed ($(tail -1 "$scratch/build.err")); debootstrap instead"
    import_root ",postgresql-15" "$postgres" "${pg_settings[@]}"
  fi
  echo "setup-images: $postgres ready"
fi
