#!/usr/bin/env bash
# Makes sure a Terraform-compatible binary is on the PATH for the terraform
# provider, its tests and its benchmark: `tofu` or `terraform` as found, or
# else OpenTofu built from source through the Go module proxy (no release
# download), pinned, cached in $PREVUE_TOFU_CACHE (default
# ~/.cache/prevue/opentofu/<version>) and linked as /usr/local/bin/tofu
# (or ~/.local/bin/tofu without root). About 3 minutes on 2 cores once.
# PREVUE_BUILD_TOFU=1 builds it even when one is present.
set -euo pipefail
cd "$(dirname "$0")/.."

TOFU_VERSION=v1.10.10

if [[ ${PREVUE_BUILD_TOFU:-0} != 1 ]] && { command -v tofu || command -v terraform; } >/dev/null 2>&1; then
  exit 0
fi

cache=${PREVUE_TOFU_CACHE:-$HOME/.cache/prevue/opentofu/$TOFU_VERSION}
if [[ ! -x $cache/tofu ]]; then
  export PATH=$PATH:/usr/local/go/bin
  command -v go >/dev/null || { echo "setup-terraform: no Go toolchain (/usr/local/go or on the PATH)" >&2; exit 1; }
  echo "setup-terraform: building OpenTofu $TOFU_VERSION from the Go module proxy (a few minutes, once)"
  export GOTOOLCHAIN=${GOTOOLCHAIN:-auto} GOFLAGS=-mod=mod CGO_ENABLED=0
  work=$(mktemp -d /tmp/prevue-tofu-build.XXXXXX)
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
  # Its go.mod replaces modules with others: `go install mod@version` refuses
  # that, so it is built inside a writable copy of the module.
  source_dir=$(go mod download -json "github.com/opentofu/opentofu@$TOFU_VERSION" |
               sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -d $source_dir ]] || { echo "setup-terraform: the module proxy did not give OpenTofu $TOFU_VERSION" >&2; exit 1; }
  cp -r "$source_dir" "$work/opentofu"
  chmod -R u+w "$work/opentofu"
  mkdir -p "$cache"
  (cd "$work/opentofu" &&
    go build -trimpath -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" -o "$cache/tofu.tmp" ./cmd/tofu)
  mv "$cache/tofu.tmp" "$cache/tofu"
fi
if [[ $(id -u) == 0 ]]; then
  ln -sfn "$cache/tofu" /usr/local/bin/tofu
else
  mkdir -p "$HOME/.local/bin"
  ln -sfn "$cache/tofu" "$HOME/.local/bin/tofu"
  echo "setup-terraform: tofu is in ~/.local/bin: put it on your PATH" >&2
fi
"$cache/tofu" version | head -1
