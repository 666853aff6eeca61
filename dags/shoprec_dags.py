"""The shoprec DAGs, chained by assets: ingest -> train -> deploy.

- ``shoprec_ingest`` (daily, ``SHOPREC_SCHEDULE``): new batches -> validated, curated data and a
  drift report; updates the ``shoprec_curated`` asset when it accepted new data.
- ``shoprec_train`` (on ``shoprec_curated``): candidates -> the gate -> a validated Bento -> an
  alias; updates ``shoprec_champion`` when it promoted a version.
- ``shoprec_deploy`` (on ``shoprec_champion``): the endpoint reloads -> shadow, canary, full.

Three DAGs, so a rollout stage waiting for traffic never holds back the next day's ingestion.
One file, so they share the assets, the task defaults and the guards without a module of their
own on the DAG path. It stays thin and cheap to parse: each task calls one function in
``pipelines/`` and passes on URIs and ids only; TensorFlow, Great Expectations and MLflow load
inside the tasks. Settings come from ``SHOPREC_*`` variables or the ``SHOPREC_CONFIG`` file, as
for the CLI. Without ``SHOPREC_PSEUDONYM_KEY`` every task fails at once, without retries,
saying so in one line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from airflow.sdk import (
    Asset,
    CronTriggerTimetable,
    Param,
    dag,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from contracts.settings import MissingPseudonymKey, Settings

SETTINGS = Settings()
MINUTES = dt.timedelta(minutes=1)
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
# Updated by shoprec_ingest when it accepted new data (or was asked to retrain): schedules
# shoprec_train. Updated by shoprec_train when it promoted a champion: schedules shoprec_deploy.
CURATED = Asset(name="shoprec_curated")
CHAMPION = Asset(name="shoprec_champion")
DEFAULT_ARGS = {
    "owner": "shoprec",
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": 10 * MINUTES,
    "execution_timeout": 30 * MINUTES,
}
TAGS = ["shoprec", "mlops", "recommendations"]


def settings() -> Settings:
    """Fresh settings in the task: a worker's environment is the one that counts. No key, no
    run: a configuration error fails the task outright (retrying would not set it)."""
    fresh = Settings()
    try:
        fresh.require_pseudonym_key()
    except MissingPseudonymKey as err:
        raise AirflowFailException(str(err)) from None
    return fresh


def unless_unavailable(call: Callable[[Settings], dict[str, Any]]) -> dict[str, Any]:
    """Run an endpoint call; no endpoint listening is a skip with the reason, not a failure."""
    from pipelines.steps import package

    current = settings()
    try:
        return call(current)
    except package.EndpointUnavailable as err:
        raise AirflowSkipException(
            f"no serving endpoint at {package.endpoint_url(current)}: {err}; "
            "start one with `shoprec serve` and re-run this task"
        ) from err


SHOPREC_INGEST_DOC = """New batches -> validated, curated data; a drift report; training queued.

Daily (``SHOPREC_SCHEDULE``, UTC). Lands the inbox's new batches and the endpoint's closed
feedback hours, validates each with Great Expectations (curated, or quarantined whole with a
report) and, when new data was accepted (or ``force_train`` is set), updates the
``shoprec_curated`` asset, which schedules ``shoprec_train``: ingestion never waits for training
or a rollout. Each task calls one function in ``pipelines/``; without ``SHOPREC_PSEUDONYM_KEY``
every task fails at once, without retries, saying so in one line.
"""


@dag(
    dag_id="shoprec_ingest",
    schedule=CronTriggerTimetable(SETTINGS.schedule, timezone="UTC"),
    start_date=START,
    catchup=SETTINGS.catchup,
    max_active_runs=1,  # runs share the inbox and the curated zone
    tags=TAGS,
    default_args=DEFAULT_ARGS,
    params={"force_train": Param(False, type="boolean",
                                 description="Queue training even when no new batch was "
                                             "accepted.")},
    doc_md=SHOPREC_INGEST_DOC,
)
def shoprec_ingest() -> None:
    @task(doc_md="Copy new batches from the inbox into the landing zone, the endpoint's closed "
          "feedback hours included; returns the landed folders still waiting for validation "
          "(none when everything was seen before).")
    def land() -> list[str]:
        from pipelines.steps.ingest import land_with_feedback

        return [str(p) for p in land_with_feedback(settings())]

    @task(doc_md="Validate each landed batch with Great Expectations: curate it, or quarantine "
          "it whole with a summary. Returns batch ids, statuses, reasons and report paths.")
    def validate(folders: list[str]) -> list[dict[str, Any]]:
        from pipelines.steps.ingest import validate_with_feedback

        return validate_with_feedback(settings(), folders)

    @task.branch(doc_md="Queue training when new data was accepted (or `force_train`), and "
                 "report quarantined batches; otherwise nothing is queued, not failed.")
    def route(batches: list[dict[str, Any]], params: dict[str, Any] | None = None) -> list[str]:
        from pipelines.steps.ingest import route

        decision = route(batches, force_train=bool((params or {}).get("force_train")))
        print(decision.reason)
        return (["report_quarantined"] if decision.quarantined else []) + (
            ["announce_curated"] if decision.train else [])

    @task(doc_md="Name every quarantined batch with its reason and summary report; training "
          "goes on without them.")
    def report_quarantined(batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from pipelines.steps.ingest import report_quarantined

        return report_quarantined(batches)

    # none_failed: a drift report with nothing to compare yet (skipped) blocks nothing.
    @task(outlets=[CURATED], trigger_rule="none_failed",
          doc_md="Update the `shoprec_curated` asset: its event schedules `shoprec_train` on "
          "the data as curated now. Runs only when `route` chose training.")
    def announce_curated(batches: list[dict[str, Any]]) -> dict[str, Any]:
        accepted = [b["batch"] for b in batches if b.get("status") == "accepted"]
        return {"accepted": accepted}

    @task(doc_md="Drift and skew report (Evidently): the new batches and the served traffic "
          "against the champion's training data. Succeeds with the breaches as warnings in its "
          "log and return value; with `SHOPREC_DRIFT_BLOCKS_PROMOTION` a breach fails it, and "
          "no training is queued by this run.")
    def report_drift() -> dict[str, Any]:
        from pipelines.steps.drift import NothingToCompare, drift_report

        current = settings()
        try:
            result = drift_report(current)
        except NothingToCompare as err:
            raise AirflowSkipException(str(err)) from err
        print(f"drift report: {result.folder} (MLflow run {result.run_id})")
        for warning in result.warnings:
            print(f"WARNING: drift threshold breached: {warning}")
        if result.warnings and current.drift.blocks_promotion:
            raise AirflowFailException(f"{len(result.warnings)} drift breach(es) block promotion "
                                       "(SHOPREC_DRIFT_BLOCKS_PROMOTION); see the report")
        return {"folder": result.folder, "run_id": result.run_id, "warnings": result.warnings}

    batches = validate(land())
    drift = report_drift()
    batches >> drift
    decision = route(batches)
    decision >> report_quarantined(batches)
    announced = announce_curated(batches)
    decision >> announced
    if SETTINGS.drift.blocks_promotion:  # a breach (the drift task failing) queues nothing
        drift >> announced


shoprec_ingest()


SHOPREC_TRAIN_DOC = """Curated data -> candidates -> gated version -> champion (or challenger).

Scheduled on the ``shoprec_curated`` asset (``shoprec_ingest`` updates it when it accepted new
data); trigger it by hand to retrain on the data as it is. Builds the feature set, fits the
baselines and one candidate per ``SHOPREC_TRAIN_GRID`` entry (each its own MLflow run), judges
the best against the champion and the baselines, packages and serves that exact Bento once, and
only then moves an alias. A promotion updates ``shoprec_champion``, which schedules
``shoprec_deploy``. Tasks pass URIs and ids only; TensorFlow and MLflow load inside them.
"""


@dag(
    dag_id="shoprec_train",
    schedule=[CURATED],
    start_date=START,
    catchup=False,
    max_active_runs=1,  # runs share the feature sets and the registry's champion
    tags=TAGS,
    default_args=DEFAULT_ARGS,
    doc_md=SHOPREC_TRAIN_DOC,
)
def shoprec_train() -> None:
    @task(doc_md="Build the feature set from the curated zone once per data version; returns "
          "its URI.")
    def build_features() -> str:
        from pipelines.steps.features import build_features_step

        return build_features_step(settings())

    @task(doc_md="Fit popularity and EASE on the same split, each as its own MLflow run: the "
          "floor every candidate must beat.")
    def train_baselines(features_uri: str) -> dict[str, dict[str, float]]:
        from pipelines.steps.baselines import train_baselines

        return train_baselines(settings(), features_uri)

    @task(doc_md="Train one candidate of the configured grid as its own MLflow run (one mapped "
          "task per grid entry); returns its run id, model URI and metrics.",
          map_index_template="{{ candidate }}", execution_timeout=120 * MINUTES)
    def train_candidate(features_uri: str, baselines: dict[str, Any],
                        overrides: dict[str, Any]) -> dict[str, Any]:
        from pipelines.steps.candidate import train_candidate

        get_current_context()["candidate"] = (  # type: ignore[typeddict-unknown-key]
            ", ".join(f"{k}={v}" for k, v in sorted(overrides.items())) or "defaults")
        return train_candidate(settings(), features_uri, overrides, baselines).to_json()

    @task(doc_md="Rank the candidates; score the best, the serving champion and the baselines "
          "on the same evaluation window, with bootstrap intervals over shoppers, paired "
          "differences and slices, all logged on the best candidate's run (`gate/`).")
    def evaluate(candidates: list[dict[str, Any]], baselines: dict[str, Any],
                 features_uri: str) -> dict[str, Any]:
        from pipelines.steps.gate import evaluate_candidates

        return evaluate_candidates(settings(), list(candidates), baselines,
                                   features_uri).to_json()

    @task(doc_md="Register the best candidate and write the gate's decision and reason on the "
          "version: on enough shoppers, champion if its paired 95 % lower bounds against the "
          "champion and the best baseline clear the margin, or, with no champion yet, if it is "
          "not worse than the best baseline by more than the non-inferiority margin. No alias "
          "moves yet.")
    def register_version(evaluation: dict[str, Any]) -> dict[str, Any]:
        from pipelines.steps.gate import register

        return register(settings(), evaluation).to_json()

    @task(doc_md="Package the version the gate just decided on (by version number) as a Bento.")
    def package_bento(gate: dict[str, Any]) -> dict[str, Any]:
        from pipelines.steps.package import package_version

        return package_version(settings(), gate["version"]).to_json()

    @task(doc_md="Infra validation: serve that exact Bento on a free local port and check an "
          "explained `/recommend` for a shopper of the evaluation window (its version, no "
          "fallback, complete attributions). A failure stops the run before any alias moves.")
    def validate_bento(evaluation: dict[str, Any], gate: dict[str, Any],
                       bento: dict[str, Any]) -> dict[str, Any]:
        from pipelines.steps.bento_check import check_bento

        if evaluation["probe_user"] is None:
            raise AirflowFailException("no shopper of the evaluation window is known to the "
                                       "candidate: nothing to validate the Bento with")
        return check_bento(settings(), bento["bento_tag"], gate["version"],
                           evaluation["probe_user"])

    @task(doc_md="Move the alias the gate chose (`champion` or `challenger`) to the validated "
          "version.")
    def move_alias(gate: dict[str, Any]) -> dict[str, Any]:
        from pipelines.steps.gate import apply_decision

        return apply_decision(settings(), gate).to_json()

    @task(outlets=[CHAMPION],
          doc_md="Update the `shoprec_champion` asset when the gate promoted the version: its "
          "event schedules `shoprec_deploy`. Skipped (no event) when the serving model stays.")
    def announce_champion(gate: dict[str, Any]) -> dict[str, Any]:
        if not gate["promoted"]:
            raise AirflowSkipException(f"v{gate['version']} is {gate['alias']}: "
                                       f"{gate['reason']}; serving unchanged")
        return {"version": gate["version"], "alias": gate["alias"]}

    @task(doc_md="Batch recommendations with reasons for the shoppers active in the last "
          "`SHOPREC_SCORE_ACTIVE_DAYS`, from the new champion, to Parquet (and the database "
          "table when `SHOPREC_SCORE_DATABASE_URL` is set); skipped when nothing was promoted.")
    def score_shoppers(gate: dict[str, Any]) -> dict[str, Any]:
        if not gate["promoted"]:
            raise AirflowSkipException(f"v{gate['version']} is {gate['alias']}: no new champion "
                                       "to score with")
        from pipelines.steps.score import score_active

        return score_active(settings(), gate["version"]).to_json()

    features = build_features()
    baselines = train_baselines(features)
    candidates = train_candidate.partial(features_uri=features, baselines=baselines).expand(
        overrides=SETTINGS.train_grid)
    evaluation = evaluate(candidates, baselines, features)
    gate = register_version(evaluation)
    validated = validate_bento(evaluation, gate, package_bento(gate))
    moved = move_alias(gate)
    validated >> moved
    moved >> announce_champion(moved)
    score_shoppers(moved)


shoprec_train()


SHOPREC_DEPLOY_DOC = """A new champion -> the endpoint reloads it -> shadow, canary, full rollout.

Scheduled on the ``shoprec_champion`` asset (``shoprec_train`` updates it on a promotion);
trigger it by hand to reload and roll out the registry's champion as it is. Its own DAG, so a
rollout stage that waits for traffic never holds back the next day's ingestion. The endpoint
calls skip, with the reason, when no endpoint listens.
"""


@dag(
    dag_id="shoprec_deploy",
    schedule=[CHAMPION],
    start_date=START,
    catchup=False,
    max_active_runs=1,  # one rollout at a time on the endpoint
    tags=TAGS,
    default_args=DEFAULT_ARGS,
    doc_md=SHOPREC_DEPLOY_DOC,
)
def shoprec_deploy() -> None:
    @task(doc_md="Ask the serving endpoint to load the registry's champion; skipped when no "
          "endpoint listens.")
    def reload_endpoint() -> dict[str, Any]:
        from pipelines.steps import package

        return unless_unavailable(package.reload_endpoint)

    @task(doc_md="Call the endpoint once and check it answers with explained recommendations "
          "from the new model; skipped when no endpoint listens.")
    def smoke_call() -> dict[str, Any]:
        from pipelines.steps import package

        answer = unless_unavailable(package.smoke_call)
        return {"model": answer["model"], "items": [i["item_id"] for i in answer["items"]]}

    stage_timeout = dt.timedelta(seconds=SETTINGS.rollout.stage_seconds) + 10 * MINUTES

    @task(doc_md="Rollout, shadow: the new champion also answers a share of live requests "
          "(`SHOPREC_ROLLOUT_SHADOW_SHARE`), logged, never returned, for "
          "`SHOPREC_ROLLOUT_STAGE_SECONDS`. Fails without retries when the endpoint rolled it "
          "back. A first champion is marked stable at once.", execution_timeout=stage_timeout)
    def rollout_shadow() -> dict[str, Any]:
        return _rollout("shadow")

    @task(doc_md="Rollout, canary: a share of shoppers (`SHOPREC_ROLLOUT_CANARY_SHARE`, sticky "
          "by pseudonym) get the new champion's answers; the endpoint rolls it back by itself "
          "on a breached threshold or an outcome read-out below the margin, which fails this "
          "task without retries. It passes as soon as the read-out does; undecided at the "
          "stage's end, it fails and its retry extends the canary.",
          execution_timeout=stage_timeout)
    def rollout_canary() -> dict[str, Any]:
        return _rollout("canary")

    @task(doc_md="Rollout, full: the new champion becomes `stable` and answers everyone.")
    def rollout_full() -> dict[str, Any]:
        return _rollout("full")

    reload_endpoint() >> smoke_call() >> rollout_shadow() >> rollout_canary() >> rollout_full()


def _rollout(stage: str) -> dict[str, Any]:
    """One rollout stage (``pipelines.steps.rollout``). A rollback fails the task outright: the
    endpoint already took the candidate back, and a retry would not change that."""
    from pipelines.steps import rollout

    try:
        return unless_unavailable(lambda current: rollout.advance(current, stage).to_json())
    except rollout.RolledBack as err:
        raise AirflowFailException(str(err)) from err


shoprec_deploy()
