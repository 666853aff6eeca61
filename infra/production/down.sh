#!/usr/bin/env bash
# `make prod-down`: stop every server `make prod-up` started, by the process ids it recorded
# under $SHOPREC_PROD_HOME/pids (whole process groups: Celery pool and task processes included).
# The databases, Redis and the data directory are left as they are.
set -uo pipefail
cd "$(dirname "$0")/../.."
ENV_FILE=${SHOPREC_PROD_ENV:-infra/production/shoprec.env}
# shellcheck disable=SC1090
[ -f "$ENV_FILE" ] && source "$ENV_FILE"
# shellcheck source=../lib.sh
source infra/lib.sh
stop_recorded "${SHOPREC_PROD_HOME:-$PWD/.prod}/pids" "${1:-}"
