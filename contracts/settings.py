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
from pydantic import BaseModel, Field, PlainValidator, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from contracts.settings_groups import (
    DriftSettings,
    EaseSettings,
    GateSettings,
    RolloutSettings,
    ScoreSettings,
    ServeSettings,
    ShopSettings,
    TrafficSettings,
    grouped,
)
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
        self._values = grouped(_read_settings_file())

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._values.items() if k in self.settings_cls.model_fields}


class _GroupedInit(PydanticBaseSettingsSource):
    """Keyword arguments as the environment names them (``Settings(gate_min_users=5)``)."""

    def __init__(self, settings_cls: type[BaseSettings], init: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._init = init

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return grouped(self._init())


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
    """Where data lives, which services to talk to, and the secrets used on the way.

    Each concern with several settings is a typed group (``settings_groups``); its environment
    variables keep their flat names: ``SHOPREC_GATE_MIN_USERS`` is ``settings.gate.min_users``.
    """

    # "_" splits an environment name once after the prefix: SHOPREC_GATE_MIN_USERS is gate's
    # min_users; names of settings outside a group are read whole, as before.
    model_config = SettingsConfigDict(env_prefix="SHOPREC_", extra="ignore",
                                      env_nested_delimiter="_", env_nested_max_split=1)

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
    pseudonym_key: SecretStr | None = Field(
        default=None,
        description="Key of the keyed hash that pseudonymises customer identifiers. No default: "
        "ingest, train, serve and the DAG refuse to run without it (``require_pseudonym_key``).",
    )
    api_token: SecretStr | None = Field(
        default=None, description="When set, every API but the health probes needs it as a "
        "bearer token. Required to listen on any address but loopback.",
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
    max_bad_row_share: float = Field(
        default=0.01, ge=0, le=1, description="Largest share of a batch's rows that may be "
        "malformed (unreadable or unparseable) and set aside; above it the file is quarantined.",
    )
    outlier_factor: float = Field(
        default=10.0, gt=1, description="Warn on prices or quantities above this multiple of the "
        "recent 99th percentile.",
    )

    model_name: str = Field(default="shoprec", description="Registered model name.")
    gate: GateSettings = Field(default_factory=GateSettings)
    rollout: RolloutSettings = Field(default_factory=RolloutSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    traffic: TrafficSettings = Field(default_factory=TrafficSettings)
    score: ScoreSettings = Field(default_factory=ScoreSettings)
    ease: EaseSettings = Field(default_factory=EaseSettings)
    shop: ShopSettings = Field(default_factory=ShopSettings)

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
    distribute: Literal["auto", "none", "multi_worker"] = Field(
        default="auto", description="Training strategy: multi-worker (MultiWorkerMirroredStrategy) "
        "when TF_CONFIG names several workers (auto) or always, or one process (none).",
    )
    schedule: str = Field(default="0 3 * * *", description="Cron of the pipeline DAG (UTC).")
    catchup: bool = Field(default=False, description="Whether the DAG backfills missed days.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (_GroupedInit(settings_cls, init_settings), env_settings,
                _FileSource(settings_cls), file_secret_settings)

    def with_values(self, **values: Any) -> Settings:
        """A validated copy with ``values`` replaced, named as in the environment without the
        prefix (``with_values(gate_min_users=5, data_dir=path)``) or as whole groups."""
        current = self.model_dump(by_alias=True)
        for name, spec in type(self).model_fields.items():  # values as they are, not dumped:
            value = getattr(self, name)  # an s3:// data dir dumps to a dict, no path again
            if not isinstance(value, BaseModel):
                current[spec.alias or name] = value
        for key, value in grouped(values).items():
            if isinstance(value, dict) and isinstance(current.get(key), dict):
                current[key] = {**current[key], **value}
            else:
                current[key] = value
        return type(self)(**current)

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
        if is_loopback(host) or token.strip() or self.serve.insecure:
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
