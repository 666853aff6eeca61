"""One typed settings object for every module: environment variables plus an optional file.

Precedence (highest first): ``SHOPREC_*`` environment variables, the settings file named by
``SHOPREC_CONFIG`` (TOML or YAML; default ``shoprec.toml`` in the working directory when present),
then the defaults below. Modules take a ``Settings`` argument instead of reading the environment,
so tests and DAGs can pass their own.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, PlainValidator, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from contracts.storage import DataPath, is_remote, location

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MISSING_KEY = ("SHOPREC_PSEUDONYM_KEY is not set: set it to a long random secret shared by every "
               "component, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`")


class MissingPseudonymKey(RuntimeError):
    """No pseudonymisation key configured: nothing that reads or serves shoppers may start."""

    def __init__(self) -> None:
        super().__init__(MISSING_KEY)


class _FileSource(PydanticBaseSettingsSource):
    """Reads the optional TOML/YAML settings file (keys are field names without the prefix)."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self._values = _read_settings_file()

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._values.items() if k in self.settings_cls.model_fields}


def settings_file() -> Path | None:
    """The settings file in force, if any; an explicitly named but missing file is an error."""
    named = os.environ.get("SHOPREC_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise FileNotFoundError(f"SHOPREC_CONFIG names {path}, which does not exist")
        return path
    default = Path("shoprec.toml")
    return default if default.is_file() else None


def _read_settings_file() -> dict[str, Any]:
    path = settings_file()
    if path is None:
        return {}
    text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    data = data or {}
    if not isinstance(data, dict):
        raise ValueError(f"settings file {path} must hold a mapping of setting names to values")
    return data.get("shoprec", data)


class Settings(BaseSettings):
    """Where data lives, which services to talk to, and the secrets used on the way."""

    model_config = SettingsConfigDict(env_prefix="SHOPREC_", extra="ignore")

    data_dir: Annotated[DataPath, PlainValidator(location)] = Field(
        default=Path("data"), description="Root of the data zones: a local folder, or an "
        "object-store URI (s3://bucket/prefix) that workers on other hosts share (see local_dir).",
    )
    expectations_dir: Path = Field(
        default=PROJECT_ROOT / "expectations", description="Versioned Great Expectations suites."
    )
    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI; falls back to MLFLOW_TRACKING_URI."
    )
    mlflow_port: int = 5000
    airflow_port: int = 8080
    serve_host: str = "127.0.0.1"
    serve_port: int = 3000
    pseudonym_key: SecretStr | None = Field(
        default=None,
        description="Key of the keyed hash that pseudonymises customer identifiers. No default: "
        "ingest, train, serve and the DAG refuse to run without it (``require_pseudonym_key``).",
    )
    api_token: SecretStr | None = Field(
        default=None, description="When set, every API but the health probes needs it as a "
        "bearer token. Required to listen on any address but loopback.",
    )
    serve_tracing: bool = Field(
        default=False, description="Pass the endpoint's requests through BentoML's "
        "OpenTelemetry middleware (configure its exporter and sample rate in BENTOML_CONFIG). Off, "
        "requests skip it: with BentoML's default sample rate of 0 it records nothing yet costs "
        "about a quarter of the event loop's time per request (measured).",
    )
    serve_model_threads: int = Field(
        default=1, ge=0, description="TensorFlow threads per operation on the endpoint's model "
        "thread (0: TensorFlow's default, one per core). One: a serving micro-batch is too small "
        "to split, handing each of its many small operations across threads cost more than it "
        "saved (measured: explained answers about a quarter cheaper), and the event loop keeps "
        "a core of its own. Raise it on many-core hosts serving large pages.",
    )
    serve_insecure: bool = Field(
        default=False, description="Let the endpoint listen on a non-loopback address without "
        "an API token (``shoprec serve --insecure``); it warns.",
    )
    feedback_max_age_hours: float = Field(
        default=168.0, gt=0, description="POST /feedback refuses events whose timestamp is "
        "older than this many hours.",
    )
    model_uri: str | None = Field(
        default=None, description="Model the endpoint serves (MLflow URI or bentoml:<tag>); "
        "default: the registry's champion, re-read on reload.",
    )
    bentoml_home: Path | None = Field(
        default=None, description="BentoML model and Bento store; default <local_dir>/bentoml."
    )
    local_dir: Path | None = Field(
        default=None, description="Local folder for what cannot live on an object store: the "
        "default SQLite MLflow store, BentoML store and inbox. Default: the data directory when "
        "it is local; needed when it is a URI, unless those three are set themselves.",
    )
    rollout_shadow_share: float = Field(
        default=0.2, gt=0, le=1, description="Rollout, shadow stage: share of live /recommend "
        "requests the new champion also answers, off the request path (logged, not returned).",
    )
    rollout_canary_share: float = Field(
        default=0.1, gt=0, le=1, description="Rollout, canary stage: share of shoppers (sticky "
        "by pseudonym hash) the new champion answers.",
    )
    rollout_min_requests: int = Field(
        default=50, ge=1, description="Candidate requests a rollout stage needs before the "
        "endpoint judges it, and before the stage may complete.",
    )
    rollout_max_error_rate: float = Field(
        default=0.02, ge=0, le=1, description="Roll back when more than this share of the "
        "candidate's calls fail or time out.",
    )
    rollout_max_p95_ratio: float = Field(
        default=1.5, gt=0, description="Roll back when the candidate's p95 latency exceeds the "
        "stable model's by more than this factor.",
    )
    rollout_max_p99_ratio: float = Field(
        default=2.0, gt=0, description="The same for p99 latency.",
    )
    rollout_timeout_ms: float = Field(
        default=1000.0, gt=0, description="A candidate answer slower than this counts as a "
        "failure; the shopper gets the stable model's answer instead.",
    )
    rollout_stage_seconds: float = Field(
        default=600.0, ge=0, description="How long `shoprec rollout shadow|canary` (and the "
        "DAG) keep a stage before it may move on.",
    )
    data_docs: Literal["problems", "all", "off"] = Field(
        default="problems",
        description="Which batches get Great Expectations Data Docs pages: quarantined or warned "
        "batches only, every batch, or none.",
    )
    history_batches: int = Field(
        default=14, ge=1, description="Recent accepted batches the warning checks compare with."
    )
    volume_drop_ratio: float = Field(
        default=0.2, gt=0, le=1, description="Warn when a batch has fewer rows than this share "
        "of the median of recent batches.",
    )
    unseen_items_max_share: float = Field(
        default=0.5, ge=0, le=1, description="Warn when more than this share of a batch's events "
        "are on items never seen before.",
    )
    max_batch_bytes: int = Field(
        default=512 * 1024**2, gt=0, description="Largest batch (all its files) ingestion reads; "
        "a larger one is quarantined unread.",
    )
    outlier_factor: float = Field(
        default=10.0, gt=1, description="Warn on prices or quantities above this multiple of the "
        "recent 99th percentile.",
    )

    model_name: str = Field(default="shoprec", description="Registered model name.")
    gate_metric: str = Field(
        default="ndcg@10", description="Metric a challenger must improve to become champion."
    )
    gate_margin: float = Field(
        default=0.0, ge=0, description="How much better (absolute) a version must be to "
        "replace the champion: the 95 % lower bounds of its paired differences against the "
        "champion and the best baseline must be above this."
    )
    gate_noninferiority_margin: float = Field(
        default=0.01, ge=0, description="With no champion yet, a version becomes the first one "
        "when it is not worse than the best baseline by more than this (absolute, in gate "
        "metric units): the 95 % lower bound of its paired difference must be above minus this. "
        "A shop without a champion gets no answers at all, so a model within a hundredth of "
        "NDCG@10 of EASE serves better than nothing; 0.01 is well under the gaps that tell a "
        "working model from a broken one (the demo's first champion was +0.057 over EASE), so "
        "a clearly worse model still never serves. 0: the first version must beat the floor.",
    )
    gate_min_users: int = Field(
        default=50, ge=1, description="The gate refuses to promote on an evaluation window with "
        "fewer shoppers than this (too few to tell models apart).",
    )

    inbox_dir: Path | None = Field(
        default=None, description="Where new raw batches arrive for the pipeline DAG to land; "
        "default <local_dir>/inbox (the data directory when local).",
    )
    shopper_store: str | None = Field(
        default=None, description="The online shopper store that ingestion and /feedback write "
        "and the endpoint reads per request: sqlite:///FILE or redis://[user:password@]host:"
        "port/db[?prefix=P]; default sqlite:///<local_dir>/online/shoppers.sqlite; none when the "
        "data directory is on an object store (hosts sharing data there share no local file: "
        "set Redis). "
        "'off': the endpoint answers from the model bundle's histories alone.",
    )
    shopper_store_limit: int = Field(
        default=1000, ge=1, description="Events kept per shopper in the shopper store (the "
        "latest by event time); the model reads at most its history length of them, the "
        "exclusion of purchased items all of them beside the bundle's record.",
    )
    shopper_store_refresh_seconds: float = Field(
        default=30.0, gt=0, description="How often the endpoint looks for catalogue items the "
        "shopper store holds and the served model cannot recommend yet (new products); found, "
        "it rebuilds the model's engine with them, recommended from their content.",
    )
    source: str = Field(default="synthetic", description="Source adapter of the inbox batches.")
    dataset: str = Field(default="synthetic", description="Names the MLflow experiment.")
    train_config: dict[str, Any] = Field(
        default_factory=dict, description="TrainConfig overrides applied to every candidate.",
    )
    train_grid: list[dict[str, Any]] = Field(
        default_factory=lambda: [{}, {"item_item_record": False}, {"item_item": False}],
        min_length=1,
        description="One candidate per entry: TrainConfig overrides on top of train_config. "
        "Default: the wide-and-deep model reading each shopper's whole record, the same "
        "reading only the recent history window, and the deep model alone, so validation "
        "chooses (the record wins on ratings-like data, the window on repeat baskets, the "
        "deep part alone on the synthetic shop's content-driven preferences).",
    )
    ease_lambda: float = Field(
        default=100.0, gt=0, description="L2 regularisation (λ) of the EASE baseline the gate's "
        "candidates are compared with; larger values shrink item-item weights more. Used only "
        "when ease_lambda_grid is empty (an explicit override).",
    )
    ease_lambda_grid: list[float] = Field(
        default_factory=lambda: [10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 3000.0],
        description="EASE's λ is chosen among these on an inner time split of the training "
        "window (the floor must be as strong as it honestly can be); empty: ease_lambda.",
    )
    ease_max_items: int = Field(
        default=20_000, gt=0, description="EASE costs O(items^3): above this many items it is "
        "restricted to the most popular ones (said in its params and the benchmark output).",
    )
    distribute: Literal["auto", "none", "multi_worker"] = Field(
        default="auto", description="Training strategy: multi-worker (MultiWorkerMirroredStrategy) "
        "when TF_CONFIG names several workers (auto) or always, or one process (none).",
    )
    schedule: str = Field(default="0 3 * * *", description="Cron of the pipeline DAG (UTC).")
    catchup: bool = Field(default=False, description="Whether the DAG backfills missed days.")

    traffic_log: bool = Field(
        default=True, description="The endpoint logs what it served (pseudonyms, never raw ids) "
        "under <data_dir>/traffic for the drift report.",
    )
    traffic_flush_rows: int = Field(
        default=1000, ge=1, description="The traffic log writes a Parquet part once it buffers "
        "this many answers...",
    )
    traffic_flush_seconds: float = Field(
        default=60.0, gt=0, description="...or this often, whichever comes first.",
    )
    traffic_buffer_rows: int = Field(
        default=100_000, ge=1, description="Most answers the traffic log buffers; beyond, it "
        "drops and counts them rather than slow the answers down.",
    )
    drift_recent_days: int = Field(
        default=7, ge=1, description="Drift report: days of served traffic compared with "
        "training; without a champion, the newest days of data compared with the earlier ones.",
    )
    drift_max_share: float = Field(
        default=0.5, gt=0, le=1, description="Drift report: a part breaches when at least this "
        "share of its columns drift (Evidently's per-column tests and thresholds).",
    )
    drift_popularity_ratio_max: float = Field(
        default=3.0, gt=0, description="Drift report: a breach when served items are on average "
        "more than this many times as popular (Evidently's ARP) as what shoppers bought.",
    )
    drift_min_rows: int = Field(
        default=50, ge=2, description="Drift report: a part with fewer current rows is reported "
        "as too small to judge, not compared.",
    )
    drift_blocks_promotion: bool = Field(
        default=False, description="A drift breach fails the DAG's drift task and so keeps the "
        "run's model from promotion (default: a warning only).",
    )
    score_k: int = Field(default=10, ge=1, le=100, description="Batch scoring: items per shopper.")
    score_active_days: int = Field(
        default=30, ge=1, description="The DAG's batch scoring covers shoppers with events in "
        "this many days up to the newest curated event.",
    )
    score_database_url: SecretStr | None = Field(
        default=None, description="Batch scoring also replaces a table in this database "
        "(SQLAlchemy URL, e.g. postgresql+psycopg2://user@127.0.0.1:5432/shop); unset: Parquet "
        "only.",
    )
    score_table: str = Field(
        default="shoprec_recommendations", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$",
        description="Table batch scoring replaces in score_database_url.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _FileSource(settings_cls), file_secret_settings

    @field_validator("expectations_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    def require_pseudonym_key(self) -> str:
        """The pseudonymisation key; ``MissingPseudonymKey`` (one line) when unset or empty."""
        key = self.pseudonym_key.get_secret_value() if self.pseudonym_key is not None else ""
        if not key.strip():
            raise MissingPseudonymKey()
        return key

    def open_access_problem(self, host: str) -> str | None:
        """Why listening on ``host`` is refused: a non-loopback address without an API token
        (unless ``serve_insecure``); None when it is fine."""
        token = self.api_token.get_secret_value() if self.api_token is not None else ""
        if is_loopback(host) or token.strip() or self.serve_insecure:
            return None
        return (f"refusing to listen on {host} without an API token: set SHOPREC_API_TOKEN "
                "(clients send `Authorization: Bearer <token>`), listen on 127.0.0.1, or pass "
                "--insecure (SHOPREC_SERVE_INSECURE=true) to serve every route unauthenticated")

    @property
    def local_root(self) -> Path:
        """Where local-only state defaults to: ``local_dir``, else the data directory when it is
        local; a one-line error when the data directory is on an object store and it is unset."""
        if self.local_dir is not None:
            return self.local_dir.expanduser().resolve()
        if is_remote(self.data_dir):
            raise ValueError(
                f"SHOPREC_DATA_DIR is {self.data_dir}, on an object store: set SHOPREC_LOCAL_DIR "
                "to a local folder for the SQLite MLflow store, the BentoML store and the inbox "
                "(or SHOPREC_TRACKING_URI, SHOPREC_BENTOML_HOME and SHOPREC_INBOX_DIR)")
        return self.data_dir

    @property
    def bentoml_store(self) -> Path:
        """BentoML's home: project-local, so models and Bentos live next to the data."""
        return (self.bentoml_home or self.local_root / "bentoml").expanduser().resolve()

    @property
    def inbox(self) -> Path:
        return (self.inbox_dir or self.local_root / "inbox").expanduser().resolve()

    @property
    def shopper_store_url(self) -> str | None:
        """The shopper store in force; None when it is turned off, or by default when the data
        is on an object store: hosts that share data there share no local file (set Redis)."""
        if self.shopper_store == "off":
            return None
        if self.shopper_store:
            return self.shopper_store
        if is_remote(self.data_dir):
            return None
        # Here, not at the top: the store needs pandas, which the DAG file must not parse with.
        from contracts.shopper_store import SQLITE_FILE

        return f"sqlite:///{self.local_root / 'online' / SQLITE_FILE}"

    @property
    def mlflow_tracking_uri(self) -> str:
        """Explicit setting, then the standard MLflow variable, then a local SQLite store."""
        return (
            self.tracking_uri
            or os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{self.local_root / 'mlflow.db'}"
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts connections from this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a name or an address we cannot judge: not loopback


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings for entry points; library code takes ``Settings`` as an argument."""
    return Settings()
