"""shoprec_pipeline: new batches -> validated data -> candidate models -> gated champion -> served.

Runs daily and whenever new batches land (the ``shoprec_new_batches`` asset). The file stays
thin and cheap to parse: each task calls one function in ``pipelines/`` and passes on URIs and
ids only; TensorFlow, Great Expectations and MLflow load inside the tasks. Settings come from
``SHOPREC_*`` variables or the ``SHOPREC_CONFIG`` file, as for the CLI. Without
``SHOPREC_PSEUDONYM_KEY`` every task fails at once, without retries, saying so in one line.
Besides the configured source's batches, every run lands the endpoint's feedback hours
(``<inbox>/feedback/``, ``pipelines.feedback``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    dag,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from contracts.settings import MissingPseudonymKey, Settings

SETTINGS = Settings()
NEW_BATCHES = Asset(name="shoprec_new_batches", uri=SETTINGS.inbox.as_uri())
MINUTES = dt.timedelta(minutes=1)


def _settings() -> Settings:
    """Fresh settings in the task: a worker's environment is the one that counts. No key, no
    run: a configuration error fails the task outright (retrying would not set it)."""
    settings = Settings()
    try:
        settings.require_pseudonym_key()
    except MissingPseudonymKey as err:
        raise AirflowFailException(str(err)) from None
    return settings


@dag(
    dag_id="shoprec_pipeline",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(SETTINGS.schedule, timezone="UTC"), assets=NEW_BATCHES
    ),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=SETTINGS.catchup,
    max_active_runs=1,  # runs share the data directory and the registry's champion
    tags=["shoprec", "mlops", "recommendations"],
    default_args={
        "owner": "shoprec",
        "retries": 2,
        "retry_delay": dt.timedelta(seconds=30),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": 10 * MINUTES,
        "execution_timeout": 30 * MINUTES,
    },
    params={"force_train": Param(False, type="boolean",
                                 description="Train even when no new batch was accepted.")},
    doc_md=__doc__,
)
def shoprec_pipeline() -> None:
    @task(doc_md="Copy new batches from the inbox into the landing zone, the endpoint's closed "
          "feedback hours included; returns the landed folders still waiting for validation "
          "(none when everything was seen before).")
    def land() -> list[str]:
        from pipelines.feedback import land_with_feedback

        return [str(p) for p in land_with_feedback(_settings())]

    @task(doc_md="Validate each landed batch with Great Expectations: curate it, or quarantine "
          "it whole with a summary. Returns batch ids, statuses, reasons and report paths.")
    def validate(folders: list[str]) -> list[dict[str, Any]]:
        from pipelines.feedback import validate_with_feedback

        return validate_with_feedback(_settings(), folders)

    @task.branch(doc_md="Train when new data was accepted (or `force_train`), and report "
                 "quarantined batches; otherwise training is skipped, not failed.")
    def route(batches: list[dict[str, Any]], params: dict[str, Any] | None = None) -> list[str]:
        from pipelines.pipeline import route

        decision = route(batches, force_train=bool((params or {}).get("force_train")))
        print(decision.reason)
        return (["report_quarantined"] if decision.quarantined else []) + (
            ["build_features"] if decision.train else [])

    @task(doc_md="Name every quarantined batch with its reason and summary report; training "
          "goes on without them.")
    def report_quarantined(batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from pipelines.pipeline import report_quarantined

        return report_quarantined(batches)

    @task(doc_md="Build the feature set from the curated zone once per data version; returns "
          "its URI.")
    def build_features() -> str:
        from pipelines.features import build_features_step

        return build_features_step(_settings())

    @task(doc_md="Fit popularity and EASE on the same split, each as its own MLflow run: the "
          "floor every candidate must beat.")
    def train_baselines(features_uri: str) -> dict[str, dict[str, float]]:
        from pipelines.baselines import train_baselines

        return train_baselines(_settings(), features_uri)

    @task(doc_md="Train one candidate of the configured grid as its own MLflow run (one mapped "
          "task per grid entry); returns its run id, model URI and metrics.",
          map_index_template="{{ candidate }}", execution_timeout=120 * MINUTES)
    def train_candidate(features_uri: str, baselines: dict[str, Any],
                        overrides: dict[str, Any]) -> dict[str, Any]:
        from pipelines.candidate import train_candidate

        get_current_context()["candidate"] = (  # type: ignore[typeddict-unknown-key]
            ", ".join(f"{k}={v}" for k, v in sorted(overrides.items())) or "defaults")
        return train_candidate(_settings(), features_uri, overrides, baselines).to_json()

    @task(doc_md="Rank the candidates; score the best, the serving champion and the baselines "
          "on the same evaluation window, with bootstrap intervals over shoppers, paired "
          "differences and slices, all logged on the best candidate's run (`gate/`).")
    def evaluate(candidates: list[dict[str, Any]], baselines: dict[str, Any],
                 features_uri: str) -> dict[str, Any]:
        from pipelines.promote import evaluate_candidates

        return evaluate_candidates(_settings(), list(candidates), baselines,
                                   features_uri).to_json()

    @task(doc_md="Register the best candidate and write the gate's decision and reason on the "
          "version: on enough shoppers, champion if its paired 95 % lower bounds against the "
          "champion and the best baseline clear the margin, or, with no champion yet, if it is "
          "not worse than the best baseline by more than the non-inferiority margin. No alias "
          "moves yet.")
    def register_version(evaluation: dict[str, Any]) -> dict[str, Any]:
        from pipelines.promote import register

        return register(_settings(), evaluation).to_json()

    @task(doc_md="Package the version the gate just decided on (by version number) as a Bento.")
    def package_bento(gate: dict[str, Any]) -> dict[str, Any]:
        from pipelines.package import package_version

        return package_version(_settings(), gate["version"]).to_json()

    @task(doc_md="Infra validation: serve that exact Bento on a free local port and check an "
          "explained `/recommend` for a shopper of the evaluation window (its version, no "
          "fallback, complete attributions). A failure stops the run before any alias moves.")
    def validate_bento(evaluation: dict[str, Any], gate: dict[str, Any],
                       bento: dict[str, Any]) -> dict[str, Any]:
        from pipelines.bento_check import check_bento

        if evaluation["probe_user"] is None:
            raise AirflowFailException("no shopper of the evaluation window is known to the "
                                       "candidate: nothing to validate the Bento with")
        return check_bento(_settings(), bento["bento_tag"], gate["version"],
                           evaluation["probe_user"])

    @task(doc_md="Move the alias the gate chose (`champion` or `challenger`) to the validated "
          "version.")
    def move_alias(gate: dict[str, Any]) -> dict[str, Any]:
        from pipelines.promote import apply_decision

        return apply_decision(_settings(), gate).to_json()

    @task(doc_md="Ask the serving endpoint to load the new champion; skipped when the gate kept "
          "the serving model, or when no endpoint listens.")
    def reload_endpoint(gate: dict[str, Any]) -> dict[str, Any]:
        if not gate["promoted"]:
            raise AirflowSkipException(f"v{gate['version']} is {gate['alias']}: "
                                       f"{gate['reason']}; serving unchanged")
        from pipelines import package

        return _unless_unavailable(package.reload_endpoint)

    @task(doc_md="Call the endpoint once and check it answers with explained recommendations "
          "from the new model; skipped when no endpoint listens.")
    def smoke_call() -> dict[str, Any]:
        from pipelines import package

        answer = _unless_unavailable(package.smoke_call)
        return {"model": answer["model"], "items": [i["item_id"] for i in answer["items"]]}

    stage_timeout = dt.timedelta(seconds=SETTINGS.rollout_stage_seconds) + 10 * MINUTES

    @task(doc_md="Rollout, shadow: the new champion also answers a share of live requests "
          "(`SHOPREC_ROLLOUT_SHADOW_SHARE`), logged, never returned, for "
          "`SHOPREC_ROLLOUT_STAGE_SECONDS`. Fails without retries when the endpoint rolled it "
          "back. A first champion is marked stable at once.", execution_timeout=stage_timeout)
    def rollout_shadow() -> dict[str, Any]:
        return _rollout("shadow")

    @task(doc_md="Rollout, canary: a share of shoppers (`SHOPREC_ROLLOUT_CANARY_SHARE`, sticky "
          "by pseudonym) get the new champion's answers; the endpoint rolls it back by itself "
          "on a breached threshold, which fails this task without retries.",
          execution_timeout=stage_timeout)
    def rollout_canary() -> dict[str, Any]:
        return _rollout("canary")

    @task(doc_md="Rollout, full: the new champion becomes `stable` and answers everyone.")
    def rollout_full() -> dict[str, Any]:
        return _rollout("full")

    @task(doc_md="Drift and skew report (Evidently): the new batches and the served traffic "
          "against the champion's training data. Succeeds with the breaches as warnings in its "
          "log and return value; with `SHOPREC_DRIFT_BLOCKS_PROMOTION` a breach fails it, and "
          "no alias moves in this run.")
    def report_drift() -> dict[str, Any]:
        from pipelines.drift import NothingToCompare, drift_report

        settings = _settings()
        try:
            result = drift_report(settings)
        except NothingToCompare as err:
            raise AirflowSkipException(str(err)) from err
        print(f"drift report: {result.folder} (MLflow run {result.run_id})")
        for warning in result.warnings:
            print(f"WARNING: drift threshold breached: {warning}")
        if result.warnings and settings.drift_blocks_promotion:
            raise AirflowFailException(f"{len(result.warnings)} drift breach(es) block promotion "
                                       "(SHOPREC_DRIFT_BLOCKS_PROMOTION); see the report")
        return {"folder": result.folder, "run_id": result.run_id, "warnings": result.warnings}

    @task(doc_md="Batch recommendations with reasons for the shoppers active in the last "
          "`SHOPREC_SCORE_ACTIVE_DAYS`, from the new champion, to Parquet (and the database "
          "table when `SHOPREC_SCORE_DATABASE_URL` is set); skipped when nothing was promoted.")
    def score_shoppers(gate: dict[str, Any]) -> dict[str, Any]:
        if not gate["promoted"]:
            raise AirflowSkipException(f"v{gate['version']} is {gate['alias']}: no new champion "
                                       "to score with")
        from pipelines.score import score_active

        return score_active(_settings(), gate["version"]).to_json()

    batches = validate(land())
    drift = report_drift()
    batches >> drift
    decision = route(batches)
    decision >> report_quarantined(batches)
    features = build_features()
    decision >> features
    baselines = train_baselines(features)
    candidates = train_candidate.partial(features_uri=features, baselines=baselines).expand(
        overrides=SETTINGS.train_grid)
    evaluation = evaluate(candidates, baselines, features)
    gate = register_version(evaluation)
    validated = validate_bento(evaluation, gate, package_bento(gate))
    moved = move_alias(gate)
    validated >> moved
    reload_endpoint(moved) >> smoke_call() >> rollout_shadow() >> rollout_canary() >> rollout_full()
    score_shoppers(moved)
    if SETTINGS.drift_blocks_promotion:  # a breach (the drift task failing) keeps the alias
        drift >> moved


def _rollout(stage: str) -> dict[str, Any]:
    """One rollout stage (``pipelines.rollout``). A rollback fails the task outright: the
    endpoint already took the candidate back, and a retry would not change that."""
    from pipelines import rollout

    try:
        return _unless_unavailable(lambda settings: rollout.advance(settings, stage).to_json())
    except rollout.RolledBack as err:
        raise AirflowFailException(str(err)) from err


def _unless_unavailable(call) -> dict[str, Any]:
    """Run an endpoint call; no endpoint listening is a skip with the reason, not a failure."""
    from pipelines import package

    settings = _settings()
    try:
        return call(settings)
    except package.EndpointUnavailable as err:
        raise AirflowSkipException(
            f"no serving endpoint at {package.endpoint_url(settings)}: {err}; "
            "start one with `shoprec serve` and re-run this task"
        ) from err


shoprec_pipeline()
