"""One typed settings object for every module: environment variables plus an optional file.

Precedence (highest first): ``SHOPREC_*`` environment variables, the settings file named by
``SHOPREC_CONFIG`` (TOML or YAML; default ``shoprec.toml`` in the working directory when present),
then the defaults below. Modules take a ``Settings`` argument instead of reading the environment,
so tests and DAGs can pass their own.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_PSEUDONYM_KEY = "shoprec-development-key-change-me"


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

    data_dir: Path = Field(default=Path("data"), description="Root of the data zones.")
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
    pseudonym_key: SecretStr = Field(
        default=SecretStr(DEV_PSEUDONYM_KEY),
        description="Key of the keyed hash that pseudonymises customer identifiers.",
    )
    api_token: SecretStr | None = Field(
        default=None, description="When set, every API but the health probes needs it as a "
        "bearer token.",
    )
    model_uri: str | None = Field(
        default=None, description="Model the endpoint serves (MLflow URI or bentoml:<tag>); "
        "default: the registry's champion, re-read on reload.",
    )
    bentoml_home: Path | None = Field(
        default=None, description="BentoML model and Bento store; default <data_dir>/bentoml."
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
    outlier_factor: float = Field(
        default=10.0, gt=1, description="Warn on prices or quantities above this multiple of the "
        "recent 99th percentile.",
    )

    model_name: str = Field(default="shoprec", description="Registered model name.")
    gate_metric: str = Field(
        default="ndcg@10", description="Metric a challenger must improve to become champion."
    )
    gate_margin: float = Field(
        default=0.0, ge=0, description="How much better (absolute) the challenger must be."
    )

    inbox_dir: Path | None = Field(
        default=None, description="Where new raw batches arrive for the pipeline DAG to land; "
        "default <data_dir>/inbox.",
    )
    source: str = Field(default="synthetic", description="Source adapter of the inbox batches.")
    dataset: str = Field(default="synthetic", description="Names the MLflow experiment.")
    train_config: dict[str, Any] = Field(
        default_factory=dict, description="TrainConfig overrides applied to every candidate.",
    )
    train_grid: list[dict[str, Any]] = Field(
        default_factory=lambda: [{}, {"dim": 32}], min_length=1,
        description="One candidate per entry: TrainConfig overrides on top of train_config.",
    )
    ease_lambda: float = Field(
        default=100.0, gt=0, description="L2 regularisation (λ) of the EASE baseline the gate's "
        "candidates are compared with; larger values shrink item-item weights more.",
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
        return init_settings, env_settings, _FileSource(settings_cls), file_secret_settings

    @field_validator("data_dir", "expectations_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def bentoml_store(self) -> Path:
        """BentoML's home: project-local, so models and Bentos live next to the data."""
        return (self.bentoml_home or self.data_dir / "bentoml").expanduser().resolve()

    @property
    def inbox(self) -> Path:
        return (self.inbox_dir or self.data_dir / "inbox").expanduser().resolve()

    @property
    def mlflow_tracking_uri(self) -> str:
        """Explicit setting, then the standard MLflow variable, then a local SQLite store."""
        return (
            self.tracking_uri
            or os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{self.data_dir / 'mlflow.db'}"
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings for entry points; library code takes ``Settings`` as an argument."""
    return Settings()
