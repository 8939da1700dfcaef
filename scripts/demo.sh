#!/usr/bin/env bash
# The main job on the embedded default (sqlite state, the `local` provider,
# the built-in proxy, a hosts-file DNS backend): installs what is missing,
# builds prevue, makes a demo repository from the reference application,
# starts `prevue serve` watching it, opens a pull-request branch and prints
# the preview's link. The service keeps running after this script ends.
# The links use fixed ports (API 7400, proxy 8080; PREVUE_DEMO_API_PORT and
# PREVUE_DEMO_PROXY_PORT change them), so they stay the same across restarts.
# `scripts/demo.sh --compose`: the same app as containers, from its own
# compose.yaml, with the `compose` provider (needs a running Docker Engine).
set -euo pipefail
compose=0
[[ ${1:-} == --compose ]] && compose=1
cd "$(dirname "$0")/.."
root=$(pwd)
api_port=${PREVUE_DEMO_API_PORT:-7400}
proxy_port=${PREVUE_DEMO_PROXY_PORT:-8080}
scripts/setup.sh
if [[ ! -x build/prevue || ! -x build/providers/local ]]; then
  echo "prevue demo: building prevue and its local provider (a few minutes on 2 cores the first time; later runs rebuild only what changed)"
fi
targets=(prevue prevue_provider_local)
if ((compose)); then
  docker info >/dev/null 2>&1 || { echo "prevue demo: --compose needs a running Docker Engine (docker info)" >&2; exit 1; }
  scripts/setup-images.sh
  targets+=(prevue_provider_compose)
fi
scripts/build.sh "${targets[@]}"

demo=${PREVUE_DEMO_DIR:-$HOME/prevue-demo$( ((compose)) && echo -compose)}
state=$demo/state
repo=$demo/app
prevue=$root/build/prevue
mkdir -p "$demo"
git_demo() { git -C "$repo" -c user.name="prevue demo" -c user.email=demo@prevue.invalid "$@"; }

# A daemon left by an earlier run is stopped first (its previews keep running).
if [[ -f $state/serve.json ]]; then
  old=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$state/serve.json" 2>/dev/null || true)
  if [[ -n $old ]] && kill -0 "$old" 2>/dev/null; then kill "$old"; while kill -0 "$old" 2>/dev/null; do sleep 0.1; done; fi
  rm -f "$state/serve.json"
fi

# The fixed ports must be free: say who holds one instead of failing later.
for port in "$api_port" "$proxy_port"; do
  if ! python3 -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null; then
    holder=$(ss -ltnpH "sport = :$port" 2>/dev/null | sed -n 's/.*users:((\("[^"]*",pid=[0-9]*\).*/\1/p' | head -1)
    echo "prevue demo: port $port on 127.0.0.1 is already in use${holder:+ by $holder}." >&2
    echo "  Stop that program, or choose other ports: PREVUE_DEMO_API_PORT=7401 PREVUE_DEMO_PROXY_PORT=8081 scripts/demo.sh" >&2
    exit 1
  fi
done

if [[ ! -d $repo/.git ]]; then
  cp -r "$root/templates/reference-app" "$repo"
  ((compose)) && cp "$root/templates/reference-compose/prevue.json" "$repo/prevue.json"
  git_demo init -q -b main
  git_demo add -A
  git_demo commit -q -m "Reference application"
fi

# The API token signs in to the dashboard too: kept across runs (a browser stays signed in).
if [[ ! -s $demo/api-token ]]; then
  (umask 077; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$demo/api-token")
fi
token=$(cat "$demo/api-token")
cat > "$demo/config.json" <<JSON
{
  "state_dir": "$state",
  "provider_dir": "$root/build/providers",
  "api": { "listen": "127.0.0.1:$api_port", "token": "$token" },
  "proxy": { "listen": "127.0.0.1:$proxy_port", "domain": "prevue.localhost" },
  "repositories": [ { "url": "$repo", "base": "main", "poll_interval": "2s" } ]
}
JSON
nohup "$prevue" serve --config "$demo/config.json" >>"$demo/serve.log" 2>&1 &
for _ in $(seq 100); do [[ -f $state/serve.json ]] && break; sleep 0.1; done
[[ -f $state/serve.json ]] || { echo "prevue serve did not start; see $demo/serve.log" >&2; exit 1; }
api=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api"])' "$state/serve.json")
pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$state/serve.json")

# Open a pull request: a branch that changes what the page says. After the
# closing message's "merge" step the branch is merged and its preview gone:
# the branch is made afresh, a new pull request.
if git_demo rev-parse -q --verify refs/heads/feature/hello >/dev/null &&
   git_demo merge-base --is-ancestor feature/hello main; then
  git_demo branch -q -D feature/hello
fi
if ! git_demo rev-parse -q --verify refs/heads/feature/hello >/dev/null; then
  git_demo checkout -q -b feature/hello main
  # The time makes each opening a change of its own, even after an earlier one was merged.
  sed -i "s/VERSION_BANNER = \"[^\"]*\"/VERSION_BANNER = \"Hello from the feature\/hello branch ($(date -u +%H:%M:%S))\"/" "$repo/web/server.py"
  git_demo commit -q -am "Say hello on the feature branch"
  git_demo checkout -q main
fi

echo "prevue demo: waiting for the preview of feature/hello ..."
url=""
head=$(git_demo rev-parse feature/hello)
for _ in $(seq 600); do
  url=$(curl -fsS -H "Authorization: Bearer $token" "$api/api/v1/environments" | python3 -c '
import json, sys
for env in json.load(sys.stdin):
    if env["ref"] == "feature/hello" and env["state"] == "ready" and env["deployed_commit"] == sys.argv[1]:
        print(env["url"])' "$head" || true)
  [[ -n $url ]] && break
  sleep 0.2
done
[[ -n $url ]] || { echo "the preview did not become ready; see $demo/serve.log" >&2; exit 1; }

cat <<MSG

  prevue is running (pid $pid), watching $repo.
  The preview of the pull request feature/hello is at:

      $url

  Previews are private: the link sends your browser to sign in at the
  dashboard first, with the token in $demo/api-token. The dashboard
  (every preview, its log, extend, redeploy, destroy) is at $api/

  Try it:
    cd $repo
    git checkout feature/hello && sed -i 's/Hello from/Hi again from/' web/server.py && git commit -qam again
        -> the page shows the new commit (only the web service restarts; with --compose, only its image is built)
    git checkout main && git merge -q --no-ff feature/hello -m merge
        -> the preview is torn down after its grace period (10m in the reference manifest)
    git checkout -b another main && echo '# x' >> api/server.py && git commit -qam another
        -> a second preview appears

    $prevue --state-dir $state ls          # environments, states, links
    curl -s $api/metrics | grep prevue_    # numbers
    $prevue gc --config $demo/config.json  # the cron cleanup pass
    kill $pid                                      # stop the service (previews keep running)
    $prevue --state-dir $state down --all  # then remove every preview
MSG
