#!/usr/bin/env bash
# `make demo`: the main job end to end on the embedded defaults, from a fresh clone.
# Today that is: generate a synthetic shop with a faulty batch, land, validate and curate it
# (showing the quarantined batch and its reason), then train the two-stage model, log it to MLflow
# and gate it into the registry. Serving and the Airflow DAG hook in here later.
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO_HOME=${SHOPREC_DEMO_HOME:-$PWD/.demo}
export SHOPREC_DATA_DIR=${SHOPREC_DATA_DIR:-$DEMO_HOME/data}
SHOP=$DEMO_HOME/shop
SHOPREC=.venv/bin/shoprec

echo "==> Generating 30 days of a synthetic shop (seed 7, one faulty batch) in $SHOP"
"$SHOPREC" generate --out "$SHOP" --days 30 --seed 7 --faults

echo "==> Ingesting into $SHOPREC_DATA_DIR (validated with Great Expectations)"
status=0
"$SHOPREC" ingest "$SHOP" --source synthetic || status=$?
case $status in
  0) echo "==> Every batch was accepted (or already ingested: re-runs are idempotent)." ;;
  3) echo "==> Some batches were quarantined, as planted. Their summaries:" ;;
  *) echo "ingest failed with exit code $status" >&2; exit "$status" ;;
esac

for summary in "$SHOPREC_DATA_DIR"/quarantine/*/summary.md; do
  [ -e "$summary" ] || continue
  echo "---- $summary"
  sed -n '1,12p' "$summary"
done

echo "==> Training the TFRS two-stage model on the curated data (logged to MLflow, then gated)"
.venv/bin/shoprec train --dataset synthetic

cat <<MSG

Data zones:      $SHOPREC_DATA_DIR/{landing,curated,rejected,quarantine}
Batch reports:   $SHOPREC_DATA_DIR/reports/batches/
Data Docs (GX):  $SHOPREC_DATA_DIR/reports/data_docs/index.html
MLflow store:    $SHOPREC_DATA_DIR/mlflow.db  (browse: .venv/bin/mlflow ui --backend-store-uri sqlite:///$SHOPREC_DATA_DIR/mlflow.db)
MSG
