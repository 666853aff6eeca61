"""Unpause, trigger and follow Airflow 3 DAGs chained by assets, printing task progress.

Triggers the first DAG, follows its run, and when that run updated an asset, follows the run
the scheduler starts for the next DAG from it (``shoprec_ingest`` -> ``shoprec_train`` ->
``shoprec_deploy``). Used by ``make demo`` and the production test. Standard library only
and one light HTTP poll every few seconds, so it takes no CPU from the tasks it watches (each
``airflow`` CLI call would import Airflow anew).
Exit status: 0 when every followed run succeeded, 1 when one failed, 2 on timeout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
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


def chained_runs(api: Api, dags: list[str], first_run: str, timeout: float, poll: float,
                 before: dict[str, set[str]] | None = None) -> dict[str, str]:
    """Follow ``first_run`` of ``dags[0]``, then each next DAG's run its asset started.

    ``before``: each DAG's run ids before the trigger (the runs not ours). Returns the run
    followed per DAG; a DAG is missing when the one before it updated no asset (nothing new to
    train on, no promotion) or failed. Raises ``TimeoutError`` when a run does not end in time.
    """
    before = before or {}
    deadline = time.monotonic() + timeout
    runs, run_id = {dags[0]: first_run}, first_run
    for upstream, downstream in zip(dags, [*dags[1:], None], strict=True):
        # ``follow`` adds the runs the scheduler started beside ours (unpausing a daily DAG
        # starts its latest slot): whichever did the work updated the asset.
        followed = {run_id}
        outcome = follow(api, upstream, followed, deadline - time.monotonic(), poll)
        if outcome == 2:
            raise TimeoutError(f"{upstream} run {run_id} did not end in time")
        if outcome or downstream is None:
            return runs
        listed = api.get(f"/api/v2/assets/events?source_dag_id={upstream}&limit=100")
        events = [e for e in listed["asset_events"] if e["source_run_id"] in followed]
        if not events:
            print(f"==> {upstream} updated no asset: no {downstream} run", flush=True)
            return runs
        print(f"==> {upstream} updated {', '.join(sorted({e['uri'] for e in events}))}: "
              f"waiting for the {downstream} run it schedules", flush=True)
        run_id = new_run(api, downstream, before.get(downstream, set()), deadline, poll)
        runs[downstream] = run_id
    return runs


def new_run(api: Api, dag_id: str, known: set[str], deadline: float, poll: float) -> str:
    while time.monotonic() < deadline:
        listed = api.get(f"/api/v2/dags/{dag_id}/dagRuns?order_by=-run_after&limit=20")
        fresh = [r["dag_run_id"] for r in listed["dag_runs"] if r["dag_run_id"] not in known]
        if fresh:
            return fresh[-1]  # the earliest new one
        time.sleep(poll)
    raise TimeoutError(f"no {dag_id} run started in time")


def run_ids(api: Api, dag_id: str) -> set[str]:
    listed = api.get(f"/api/v2/dags/{dag_id}/dagRuns?limit=100")
    return {r["dag_run_id"] for r in listed["dag_runs"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--dag", nargs="+", default=["shoprec_ingest", "shoprec_train",
                                                     "shoprec_deploy"],
                        help="the DAG to trigger, then the DAGs its assets schedule, in order")
    parser.add_argument("--passwords", type=Path, required=True,
                        help="simple auth manager's generated passwords file")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--poll", type=float, default=5)
    args = parser.parse_args()

    password = json.loads(args.passwords.read_text())[args.user]
    api = Api(args.url, args.user, password)
    first = args.dag[0]
    for dag_id in args.dag:
        wait_for_dag(api, dag_id, timeout=120)
    before = {dag_id: run_ids(api, dag_id) for dag_id in args.dag}
    for dag_id in reversed(args.dag):  # consumers first: an asset event finds them listening
        api.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False})
    run = api.post(f"/api/v2/dags/{first}/dagRuns",
                   {"logical_date": None, "note": "triggered by make demo"})
    print(f"==> Triggered {run['dag_run_id']}: "
          f"{args.url}/dags/{first}/runs/{run['dag_run_id']}", flush=True)
    try:
        runs = chained_runs(api, args.dag, run["dag_run_id"], args.timeout, args.poll, before)
    except TimeoutError as err:
        print(f"gave up: {err}; the runs go on in Airflow", file=sys.stderr)
        return 2
    states = {dag_id: api.get(f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(r)}")["state"]
              for dag_id, r in runs.items()}
    return 0 if all(state == "success" for state in states.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
