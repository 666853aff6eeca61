#!/usr/bin/env bash
# `make demo-stop`: stop every server `make demo` started, by the process ids it recorded.
# Each was started in its own process group, so the group (workers, scheduler, ...) goes with it.
set -uo pipefail
cd "$(dirname "$0")/.."
PIDS=${SHOPREC_DEMO_HOME:-$PWD/.demo}/pids
quiet=${1:-}

shopt -s nullglob
for file in "$PIDS"/*.pid; do
  pid=$(cat "$file")
  name=$(basename "$file" .pid)
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    [ -n "$quiet" ] || echo "stopped $name (pid $pid)"
  fi
  rm -f "$file"
done
