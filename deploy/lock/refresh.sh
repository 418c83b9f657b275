#!/usr/bin/env bash
# Refresh the lock files from pyproject.toml's ranges: `make lock` (newest allowed releases) or
# `make lock-check` (resolve again keeping every current pin; fails when the locks no longer
# satisfy pyproject.toml). Uses the uv pinned, with hashes, in deploy/lock/tools.lock.
#
#   requirements-dev.lock   runtime + dev tools: what `make install`, `make test`, CI use
#   requirements.lock       runtime only, the same versions: what the container image uses
# Both include the build backend (deploy/lock/build.in).
set -euo pipefail
cd "$(dirname "$0")/../.."

mode=${1:-refresh}
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
tools=${LOCK_TOOLS_VENV:-.venv-lock}
if [ ! -x "$tools/bin/uv" ]; then
    "$python" -m venv "$tools"
    "$tools/bin/python" -m pip install --quiet --require-hashes --no-deps -r deploy/lock/tools.lock
fi
uv=$tools/bin/uv
build=deploy/lock/build.in
compile=("$uv" pip compile --quiet --universal --python-version 3.11 --generate-hashes
         --no-header)

case "$mode" in
    refresh)
        "${compile[@]}" --upgrade pyproject.toml "$build" --extra dev -o requirements-dev.lock
        "${compile[@]}" pyproject.toml "$build" -c requirements-dev.lock -o requirements.lock
        echo "lock files refreshed: review 'git diff requirements*.lock', run make test, commit"
        ;;
    check)
        # Resolve again in a copy of the inputs, keeping every current pin: identical output
        # means the locks still satisfy pyproject.toml.
        out=$(mktemp -d)
        trap 'rm -rf "$out"' EXIT
        mkdir -p "$out/deploy/lock"
        cp pyproject.toml requirements-dev.lock requirements.lock "$out"/
        cp "$build" "$out/$build"
        uv=$(cd "$(dirname "$uv")" && pwd)/uv
        compile[0]=$uv
        (
            cd "$out"
            "${compile[@]}" pyproject.toml "$build" --extra dev -o requirements-dev.lock
            "${compile[@]}" pyproject.toml "$build" -c requirements-dev.lock -o requirements.lock
        )
        status=0
        for lock in requirements-dev.lock requirements.lock; do
            if ! diff -u "$lock" "$out/$lock"; then
                echo "$lock does not match pyproject.toml: run 'make lock' and commit" >&2
                status=1
            fi
        done
        [ $status = 0 ] && echo "lock files match pyproject.toml"
        exit $status
        ;;
    *) echo "usage: $0 [refresh|check]" >&2; exit 2 ;;
esac
