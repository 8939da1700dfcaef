#!/usr/bin/env bash
# Builds Docker Compose v2 from the Go module proxy and installs it as the
# docker CLI plugin (~/.docker/cli-plugins/docker-compose), for machines
# where Debian 12 only packages Compose v1 (docker-compose, Python). prevue
# prefers v2 where `docker compose` answers; bench_compose measures both
# sides with it. Skipped when `docker compose version` already answers.
# About 5 minutes on 2 cores, once; needs Go (/usr/local/go or on the PATH).
set -euo pipefail
version=v2.40.3
plugin_dir=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
if docker compose version >/dev/null 2>&1; then
  exit 0
fi
export PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || { echo "setup-compose-v2: no Go toolchain; Compose v1 stays in use" >&2; exit 1; }
work=$(mktemp -d /tmp/prevue-compose-v2.XXXXXX)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
echo "setup-compose-v2: building Docker Compose $version from the Go module proxy"
# `go install` refuses a module whose go.mod has exclude directives: built as the main module instead.
source_dir=$(go mod download -json "github.com/docker/compose/v2@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
cp -r "$source_dir" "$work/src"
chmod -R u+w "$work/src"
(cd "$work/src" && go build -trimpath -ldflags "-X github.com/docker/compose/v2/internal.Version=$version" -o "$work/docker-compose" ./cmd)
mkdir -p "$plugin_dir"
install -m 0755 "$work/docker-compose" "$plugin_dir/docker-compose"
docker compose version
