#!/usr/bin/env bash
# `make demo`: the whole product on the embedded defaults (and a pseudonymisation key it generates
# into .demo/ once), from a fresh clone, with no manual step.
# Starts an MLflow server, Airflow standalone (LocalExecutor on SQLite) and the BentoML endpoint,
# all under a project-local home; generates 30 days of a synthetic shop with faulty batches into
# the pipeline's inbox; triggers shoprec_ingest and follows the DAGs its assets schedule; shows the quarantined
# batches and a sample /recommend answer with its reasons. `make demo-stop` stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

export DEMO_HOME=${SHOPREC_DEMO_HOME:-$ROOT/.demo}
MLFLOW_PORT=${SHOPREC_MLFLOW_PORT:-5000}
AIRFLOW_PORT=${SHOPREC_AIRFLOW_PORT:-8080}
SERVE_PORT=${SHOPREC_SERVE_PORT:-3000}
HOST=127.0.0.1

export PATH=$ROOT/.venv/bin:$PATH  # `airflow standalone` starts its parts as `airflow ...`
export TF_USE_LEGACY_KERAS=1 GX_ANALYTICS_ENABLED=false MLFLOW_DISABLE_TELEMETRY=true
export SHOPREC_DATA_DIR=$DEMO_HOME/data
export SHOPREC_TRACKING_URI=http://$HOST:$MLFLOW_PORT
export SHOPREC_SERVE_HOST=$HOST SHOPREC_SERVE_PORT=$SERVE_PORT
export AIRFLOW_HOME=$DEMO_HOME/airflow
export AIRFLOW__CORE__DAGS_FOLDER=$ROOT/dags
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__API__HOST=$HOST AIRFLOW__API__PORT=$AIRFLOW_PORT
export AIRFLOW__API__BASE_URL=http://$HOST:$AIRFLOW_PORT
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://$HOST:$AIRFLOW_PORT/execution/
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false

PIDS=$DEMO_HOME/pids LOGS=$DEMO_HOME/logs
source infra/lib.sh
stop_recorded "$PIDS" --quiet  # a second `make demo` replaces the first one's servers
mkdir -p "$PIDS" "$LOGS" "$DEMO_HOME/mlflow" "$SHOPREC_DATA_DIR"

# No built-in pseudonymisation key: the demo makes its own on the first run, keeps it private
# in $DEMO_HOME and reuses it, so every component (and every later run) agrees on pseudonyms.
# An explicit SHOPREC_PSEUDONYM_KEY in the environment wins.
KEY_FILE=$DEMO_HOME/pseudonym.key
if [ -z "${SHOPREC_PSEUDONYM_KEY:-}" ]; then
  if [ ! -s "$KEY_FILE" ]; then
    (umask 077 && python -c "import secrets; print(secrets.token_urlsafe(32))" >"$KEY_FILE")
    echo "==> Generated the demo's pseudonymisation key in $KEY_FILE"
  fi
  SHOPREC_PSEUDONYM_KEY=$(cat "$KEY_FILE")
fi
export SHOPREC_PSEUDONYM_KEY

echo "==> Starting MLflow ($HOST:$MLFLOW_PORT), Airflow standalone ($HOST:$AIRFLOW_PORT) and the endpoint ($HOST:$SERVE_PORT); logs in $LOGS"
start mlflow mlflow server --host "$HOST" --port "$MLFLOW_PORT" \
  --backend-store-uri "sqlite:///$DEMO_HOME/mlflow/mlflow.db" \
  --artifacts-destination "$DEMO_HOME/mlflow/artifacts" --serve-artifacts
start airflow airflow standalone
# Started beside Airflow on a fresh environment (first imports compile), MLflow 3 took
# just over 120 s on a slow 2-core day: the same allowance as Airflow.
wait_http mlflow "http://$HOST:$MLFLOW_PORT/health" 300
# The endpoint starts without a champion (not ready); the DAG reloads it after a promotion.
start serve shoprec serve --host "$HOST" --port "$SERVE_PORT"
wait_http airflow "http://$HOST:$AIRFLOW_PORT/api/v2/monitor/health" 300
wait_http serve "http://$HOST:$SERVE_PORT/healthz" 180

INBOX=$(python -c "from contracts.settings import get_settings; print(get_settings().inbox)")
echo "==> Generating 30 days of a synthetic shop (seed 7, with faulty batches) into $INBOX"
shoprec generate --out "$INBOX" --days 30 --seed 7 --faults

echo "==> Running the shoprec DAGs: shoprec_ingest (land -> validate) -> shoprec_train (features -> train -> gate -> package) -> shoprec_deploy (reload -> smoke -> rollout)"
python infra/follow_dag.py --url "http://$HOST:$AIRFLOW_PORT" \
  --passwords "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"

echo "==> Quarantined batches and why (full reports under $SHOPREC_DATA_DIR/quarantine/):"
found=0
for summary in "$SHOPREC_DATA_DIR"/quarantine/*/summary.md; do
  [ -e "$summary" ] || continue
  found=1
  echo "---- $summary"
  sed -n '1,10p' "$summary"
done
((found)) || echo "(none)"

echo "==> Drift and skew report (Evidently HTML; README: Monitoring): the newest that compared data"
python - "$SHOPREC_DATA_DIR/reports/drift" <<'PY'
import json, pathlib, sys
reports = sorted(pathlib.Path(sys.argv[1]).glob("*/summary.json"), reverse=True)
if not reports:
    sys.exit(print("(none yet: see the report_drift task's log in Airflow)"))
summaries = [json.loads(path.read_text()) for path in reports]
# A run that found too few new rows writes a summary without HTML; show the newest with pages.
summary = next((s for s in summaries if any(p["html"] for p in s["parts"])), summaries[0])
pages = [pathlib.Path(p["html"]).name for p in summary["parts"] if p["html"]]
print(f"  files:     {summary['folder']}/ ({', '.join(pages) or 'no pages'})")
print(f"  MLflow:    run {summary['run_id']} (drift-report, experiment shoprec-synthetic): "
      "Artifacts > drift/")
print(f"  reference: {summary['reference']}")
for part in summary["parts"]:
    if part["note"]:
        print(f"  {part['name']}: {part['note']}")
for line in summary["warnings"] or ["no threshold breached"]:
    print(f"  {line}")
PY

echo "==> A sample /recommend answer (explain=true, k=3) from the served champion:"
wait_http serve "http://$HOST:$SERVE_PORT/readyz" 120
python infra/sample_request.py --url "http://$HOST:$SERVE_PORT" --customers "$INBOX/users.csv"

PASSWORDS=$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated
cat <<MSG

shoprec demo is running (stop everything with: make demo-stop)
  Airflow UI:  http://$HOST:$AIRFLOW_PORT   user admin, password in $PASSWORDS
  MLflow UI:   http://$HOST:$MLFLOW_PORT   experiment shoprec-synthetic, model shoprec@champion
  Endpoint:    http://$HOST:$SERVE_PORT    Swagger UI at /, e.g. POST /recommend
  Explore:     http://$HOST:$SERVE_PORT/explore   what a shopper sees and why (try a customer_id
               from $INBOX/users.csv)
Data zones:    $SHOPREC_DATA_DIR/{inbox,landing,curated,rejected,quarantine}
Logs:          $LOGS
MSG
