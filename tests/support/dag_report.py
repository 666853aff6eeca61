"""Parse the DAG folder in a fresh interpreter and print what the integrity test checks, as JSON.

Run as ``python -m tests.support.dag_report DAGS_FOLDER``. A fresh process is the honest setting:
it is what Airflow's DAG processor pays per file, and it shows which modules the file pulls in.
"""

from __future__ import annotations

import json
import sys

HEAVY = ("tensorflow", "mlflow", "great_expectations", "bentoml", "keras")


def report(folder: str) -> dict:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=folder)
    dags = {}
    for dag_id, dag in bag.dags.items():
        dag.check_cycle()  # raises on a cycle
        dags[dag_id] = {
            "tags": sorted(dag.tags),
            "schedule": type(dag.timetable).__name__,
            # What an asset schedule waits for (AssetAll of the listed assets).
            "assets": sorted(getattr(a, "name", str(a)) for a in getattr(
                getattr(dag.timetable, "asset_condition", None), "objects", ())),
            "catchup": dag.catchup,
            "doc_md": bool(dag.doc_md),
            "tasks": {
                t.task_id: {
                    "owner": t.owner,
                    "retries": t.retries,
                    "backoff": t.retry_exponential_backoff,
                    "timeout_s": t.execution_timeout.total_seconds()
                    if t.execution_timeout else None,
                    "doc_md": bool(t.doc_md),
                    "mapped": "MappedOperator" in type(t).__name__,
                    "downstream": sorted(t.downstream_task_ids),
                    "outlets": sorted(getattr(o, "name", str(o)) for o in t.outlets),
                }
                for t in dag.tasks
            },
        }
    return {
        "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
        "parse_seconds": {s.file: s.duration.total_seconds() for s in bag.dagbag_stats},
        "dags": dags,
        "heavy_modules": sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY)),
    }


if __name__ == "__main__":
    print(json.dumps(report(sys.argv[1])))
