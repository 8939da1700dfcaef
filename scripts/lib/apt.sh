# install_packages PKG...: installs the Debian packages not yet installed.
# Daemons in them (knot, nginx, docker-registry) are not started by the install: a temporary
# policy-rc.d refuses it, so nothing listens but what prevue's own tests and
# benchmarks start, on loopback. Sourced by scripts/setup.sh and setup-bench.sh.
install_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  local sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  local policy=/usr/sbin/policy-rc.d placed=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee "$policy" >/dev/null
    "${sudo_cmd[@]}" chmod +x "$policy"
    placed=1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
  ((placed)) && "${sudo_cmd[@]}" rm -f "$policy"
  # A service started anyway (systemd without policy-rc.d support) is stopped.
  for p in knot nginx docker-registry; do "${sudo_cmd[@]}" systemctl disable --now "$p" >/dev/null 2>&1 || true; done
  return 0
}
