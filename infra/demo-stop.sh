#!/usr/bin/env bash
# `make demo-stop`: stop every server `make demo` started, by the process ids it recorded.
# Each was started in its own process group, so the group (workers, scheduler, ...) goes with it.
set -uo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh
stop_recorded "${SHOPREC_DEMO_HOME:-$PWD/.demo}/pids" "${1:-}"
