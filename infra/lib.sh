# Shell helpers for scripts that start shoprec's servers in the background and stop them later.
# Source it after setting PIDS and LOGS (folders): each server runs detached in its own process
# group, its pid recorded in $PIDS/<name>.pid, so a later `stop_recorded` ends it with every
# child (Celery pool, gunicorn/uvicorn workers, task processes) by that pid alone.

start() {  # name, command...: run detached in its own process group, record the pid
  local name=$1; shift
  setsid "$@" >"$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! >"$PIDS/$name.pid"
}

_gave_up() {  # name, what it was waiting for: say so with the end of its log, and fail
  echo "$1 did not come up ($2); its log ($LOGS/$1.log) ends with:" >&2
  tail -20 "$LOGS/$1.log" >&2
  exit 1
}

wait_http() {  # name, url, seconds: until the URL answers 2xx, the server dies, or time is up
  local name=$1 url=$2 deadline=$((SECONDS + $3))
  until curl -fs -o /dev/null "$url"; do
    if ! kill -0 "$(cat "$PIDS/$name.pid")" 2>/dev/null || ((SECONDS > deadline)); then
      _gave_up "$name" "no answer at $url"
    fi
    sleep 2
  done
}

wait_log() {  # name, extended regex, seconds: until the server's log shows the line
  local name=$1 pattern=$2 deadline=$((SECONDS + $3))
  until grep -Eq "$pattern" "$LOGS/$name.log" 2>/dev/null; do
    if ! kill -0 "$(cat "$PIDS/$name.pid")" 2>/dev/null || ((SECONDS > deadline)); then
      _gave_up "$name" "no line matching '$pattern' in its log"
    fi
    sleep 2
  done
}

_alive() {  # pid: its process group (or, if it made none, the process) still has a member
  kill -0 -- "-$1" 2>/dev/null || kill -0 "$1" 2>/dev/null
}

stop_recorded() {  # pid folder, [--quiet]: TERM every recorded group, KILL what is left at 30 s
  local folder=$1 quiet=${2:-} file pid deadline=$((SECONDS + 30))
  local -a running=()
  shopt -s nullglob
  for file in "$folder"/*.pid; do  # all at once: a worker need not wait for the scheduler's end
    pid=$(cat "$file")
    if _alive "$pid"; then
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      running+=("$file")
    else
      rm -f "$file"
    fi
  done
  shopt -u nullglob
  for file in "${running[@]}"; do
    pid=$(cat "$file")
    while _alive "$pid" && ((SECONDS < deadline)); do sleep 1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    [ -n "$quiet" ] || echo "stopped $(basename "$file" .pid) (pid $pid)"
    rm -f "$file"
  done
}
