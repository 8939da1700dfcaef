#!/usr/bin/env bash
# The main job on the embedded default (sqlite state, the `local` provider):
# installs what is missing, builds prevue, makes a demo repository from the
# reference application with a pull-request branch, and brings up its
# preview. The preview keeps running after this script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scripts/setup.sh
scripts/build.sh

demo=${PREVUE_DEMO_DIR:-$HOME/prevue-demo}
export PREVUE_STATE_DIR=${PREVUE_STATE_DIR:-$demo/state}
prevue=$root/build/prevue
repo=$demo/app
git_as_demo=(git -C "$repo" -c user.name="prevue demo" -c user.email=demo@prevue.invalid)

if [[ ! -d $repo/.git ]]; then
  mkdir -p "$demo"
  cp -r "$root/templates/reference-app" "$repo"
  "${git_as_demo[@]}" init -q -b main
  "${git_as_demo[@]}" add -A
  "${git_as_demo[@]}" commit -q -m "Reference application"
  "${git_as_demo[@]}" checkout -q -b feature/hello
  sed -i 's/VERSION_BANNER = "Reference app"/VERSION_BANNER = "Hello from the feature\/hello branch"/' "$repo/web/server.py"
  "${git_as_demo[@]}" commit -q -am "Say hello on the feature branch"
  "${git_as_demo[@]}" checkout -q main
fi

echo "prevue demo: bringing up the preview of PR 1 (branch feature/hello) of $repo"
url=$("$prevue" up --repo "$repo" --pr 1 --ref feature/hello)
cat <<MSG

  Preview of PR 1 is ready:  $url

  It runs the reference app at the branch's commit, with its seeded rows.
  Try (first: export PREVUE_STATE_DIR=$PREVUE_STATE_DIR):
    $prevue ls                                  # environments and their state
    $prevue logs $("$prevue" ls --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["slug"])')
    $prevue render --repo $repo --ref main      # dry run: plan and rendered files
    # push to the branch, then update the preview (only changed services restart):
    $prevue up --repo $repo --pr 1 --ref feature/hello
    $prevue down --repo $repo --pr 1            # tear it down, nothing left behind
MSG
