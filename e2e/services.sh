#!/usr/bin/env bash
# Installs (when missing) and starts the real servers the e2e tests use, on
# loopback ports, idempotently; prints `export VAR=value` lines for the tests.
#
#   e2e/services.sh up [NAME...]     install + start (all when none named), wait until each answers
#   e2e/services.sh down [NAME...]   stop
#   eval "$(e2e/services.sh up)"     what `make test` does
#
# Each service lives in e2e/services.d/NAME.sh and defines NAME_up, NAME_down
# and NAME_env. Downloads are cached in $FLOWD_CACHE (default ~/.cache/flowd);
# runtime state and logs go to $FLOWD_STATE (default /tmp/flowd-e2e).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export FLOWD_CACHE=${FLOWD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flowd}
export FLOWD_STATE=${FLOWD_STATE:-/tmp/flowd-e2e}
mkdir -p "$FLOWD_CACHE" "$FLOWD_STATE"
# Servers that drop root for a user of their own (Debian's Mosquitto runs as
# "mosquitto") must reach their files here: a state directory from mktemp is
# private (0700) and would keep them out.
chmod go+rx "$FLOWD_STATE"
# shellcheck source=e2e/services.d/lib.sh
source "$here/services.d/lib.sh"

all=()
for f in "$here"/services.d/*.sh; do
  name=$(basename "$f" .sh)
  [ "$name" = lib ] && continue
  # shellcheck disable=SC1090
  source "$f"
  all+=("$name")
done

cmd=${1:-}
shift || true
names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${all[@]}")

case "$cmd" in
  up)
    for n in "${names[@]}"; do
      declare -F "${n}_up" >/dev/null || { echo "unknown service: $n (known: ${all[*]})" >&2; exit 2; }
      log "starting $n"
      "${n}_up" >&2
      "${n}_env"
    done
    ;;
  down)
    for n in "${names[@]}"; do
      declare -F "${n}_down" >/dev/null || { echo "unknown service: $n" >&2; exit 2; }
      "${n}_down" >&2 || true
    done
    ;;
  env)
    for n in "${names[@]}"; do "${n}_env"; done
    ;;
  *)
    echo "usage: $0 up|down|env [NAME...]   (services: ${all[*]})" >&2
    exit 2
    ;;
esac
