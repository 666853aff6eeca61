"""Unpause, trigger and follow an Airflow 3 DAG through its REST API, printing task progress.

Used by ``make demo``. Standard library only and one light HTTP poll every few seconds, so it
takes no CPU from the tasks it watches (each ``airflow`` CLI call would import Airflow anew).
Exit status: 0 when every followed run succeeded, 1 when one failed, 2 on timeout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

DONE = {"success", "failed"}
TASK_MARK = {"success": "ok", "skipped": "skip", "failed": "FAIL", "upstream_failed": "FAIL",
             "running": "..", "queued": "..", "scheduled": "..", "up_for_retry": "retry"}


class Api:
    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url.rstrip("/")
        body = self._call("POST", "/auth/token", {"username": username, "password": password})
        self.token = body["access_token"]

    def _call(self, method: str, path: str, payload: dict | None = None) -> dict:
        request = urllib.request.Request(
            self.url + path, method=method,
            data=json.dumps(payload).encode() if payload is not None else None,
            headers={"Content-Type": "application/json"}
            | ({"Authorization": f"Bearer {self.token}"} if hasattr(self, "token") else {}),
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def get(self, path: str) -> dict:
        return self._call("GET", path)

    def post(self, path: str, payload: dict) -> dict:
        return self._call("POST", path, payload)

    def patch(self, path: str, payload: dict) -> dict:
        return self._call("PATCH", path, payload)


def wait_for_dag(api: Api, dag_id: str, timeout: float) -> None:
    """The DAG processor parses the folder a few seconds after start-up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            api.get(f"/api/v2/dags/{dag_id}")
            return
        except urllib.error.HTTPError as err:
            if err.code != 404 or time.monotonic() > deadline:
                raise
        time.sleep(3)


def progress_line(run: dict, tasks: list[dict]) -> str:
    cells = []
    for ti in sorted(tasks, key=lambda t: (t.get("start_date") or "~", t["task_id"],
                                           t["map_index"])):
        name = ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else "")
        state = ti.get("state")
        if state:
            cells.append(f"{name}:{TASK_MARK.get(state, state)}")
    return f"{run['dag_run_id']} ({run['state']}): " + (" ".join(cells) or "waiting to start")


def follow(api: Api, dag_id: str, run_ids: set[str], timeout: float, poll: float) -> int:
    """Follow the triggered run and any run the scheduler started beside it, until all finish."""
    deadline, last = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        runs = api.get(f"/api/v2/dags/{dag_id}/dagRuns?order_by=-run_after&limit=20")["dag_runs"]
        followed = [r for r in runs if r["dag_run_id"] in run_ids or r["state"] not in DONE]
        run_ids |= {r["dag_run_id"] for r in followed}
        for run in followed:
            tasks = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}"
                            "/taskInstances?limit=100")["task_instances"]
            line = progress_line(run, tasks)
            if last.get(run["dag_run_id"]) != line:
                print(f"  {time.strftime('%H:%M:%S')} {line}", flush=True)
                last[run["dag_run_id"]] = line
        if followed and all(r["state"] in DONE for r in followed):
            failed = [r["dag_run_id"] for r in followed if r["state"] == "failed"]
            if failed:
                print(f"run(s) failed: {', '.join(failed)}; see the task logs in the Airflow UI",
                      file=sys.stderr)
            return 1 if failed else 0
        time.sleep(poll)
    print(f"gave up after {timeout:.0f} s; the runs go on in Airflow", file=sys.stderr)
    return 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--dag", default="shoprec_pipeline")
    parser.add_argument("--passwords", type=Path, required=True,
                        help="simple auth manager's generated passwords file")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--poll", type=float, default=5)
    args = parser.parse_args()

    password = json.loads(args.passwords.read_text())[args.user]
    api = Api(args.url, args.user, password)
    wait_for_dag(api, args.dag, timeout=120)
    api.patch(f"/api/v2/dags/{args.dag}", {"is_paused": False})
    run = api.post(f"/api/v2/dags/{args.dag}/dagRuns",
                   {"logical_date": None, "note": "triggered by make demo"})
    print(f"==> Triggered {run['dag_run_id']}: "
          f"{args.url}/dags/{args.dag}/runs/{run['dag_run_id']}", flush=True)
    return follow(api, args.dag, {run["dag_run_id"]}, args.timeout, args.poll)


if __name__ == "__main__":
    sys.exit(main())
