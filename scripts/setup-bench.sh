#!/usr/bin/env bash
# Installs what the benchmarks need beyond scripts/setup.sh: nginx (the
# peer the proxy is measured against) and wrk (the load generator). Debian
# starts nginx on port 80 when it is installed; a temporary policy-rc.d
# stops that, so nothing listens beyond what the benchmark starts itself
# on loopback.
set -euo pipefail
missing=()
for p in nginx-light wrk; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0
sudo_cmd=()
[[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
policy=/usr/sbin/policy-rc.d
placed=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee "$policy" >/dev/null
  "${sudo_cmd[@]}" chmod +x "$policy"
  placed=1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
((placed)) && "${sudo_cmd[@]}" rm -f "$policy"
# A system nginx started anyway (no policy-rc.d support) is stopped: the benchmark runs its own.
"${sudo_cmd[@]}" systemctl disable --now nginx >/dev/null 2>&1 || true
exit 0
