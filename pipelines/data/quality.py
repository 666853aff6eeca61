"""Great Expectations validation of batches against the versioned suites in ``expectations/``.

One GX context per process: suites, assets and checkpoints are set up once and reused for every
batch (rebuilding them per batch would dominate ingestion time). Each suite is first screened by
GX's validator alone, answering only pass/fail (``BatchValidator._screen``); a detailed checkpoint,
run only when the screen fails, collects counts and examples for the report and the Data Docs.
Each expectation carries a GX ``severity``: a failed *critical* expectation quarantines the batch,
a failed *warning* is reported and the batch accepted.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from contracts.storage import DataPath, is_remote, put
from pipelines.data.gx_configurations import configurations_built_once
from pipelines.data.zones import DataDir

log = logging.getLogger(__name__)

_SITE = "local"


@dataclass(frozen=True)
class Finding:
    """One failed expectation, in words a person can act on."""

    suite: str
    expectation: str
    column: str | None
    severity: str
    description: str
    unexpected_count: int | None
    examples: list[Any]
    observed: Any = None

    @property
    def label(self) -> str:
        target = f"{self.suite}.{self.column}" if self.column else self.suite
        return f"{target}: {self.expectation}"

    def sentence(self) -> str:
        """``events.event_type: expected event_type is one of ... (3 rows fail; e.g. 'click')``."""
        target = f"{self.suite}.{self.column}" if self.column else self.suite
        detail = []
        if self.unexpected_count:
            count = self.unexpected_count
            detail.append("1 row fails" if count == 1 else f"{count} rows fail")
        if self.examples:
            detail.append("e.g. " + ", ".join(repr(x) for x in self.examples[:3]))
        if self.observed is not None and not self.unexpected_count:
            detail.append(f"observed {self.observed}")
        tail = f" ({'; '.join(detail)})" if detail else ""
        return f"{target}: expected {self.description}{tail}"


@dataclass
class Validation:
    """Outcome of validating one batch's frames."""

    critical: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)  # suite -> GX validation result
    result_ids: list[Any] = field(default_factory=list)
    detailed_ids: list[Any] = field(default_factory=list)  # those kept in GX's store (Data Docs)

    @property
    def passed(self) -> bool:
        return not self.critical

    @property
    def ids(self) -> list[str]:
        """Stable ids of the GX validation results, recorded as data lineage."""
        return [str(r) for r in self.result_ids]

    def merge(self, other: Validation) -> None:
        self.critical += other.critical
        self.warnings += other.warnings
        self.results.update(other.results)
        self.result_ids += other.result_ids
        self.detailed_ids += other.detailed_ids

    def to_json(self) -> dict[str, Any]:
        """The full GX results; serialising is costly, so only done for batches worth a look."""
        return {suite: result.to_json_dict() for suite, result in self.results.items()}


class SuiteNotFound(RuntimeError):
    pass


class BatchValidator:
    """Validates frames with the suites in ``expectations_dir``; Data Docs go to the data dir.

    GX renders Data Docs to local files only: for a data directory on an object store they are
    rendered into a local scratch folder and uploaded after each build (the uploaded index then
    lists this process's pages).
    """

    def __init__(self, expectations_dir: Path, data_dir: DataDir, data_docs: str = "problems"):
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        self._gx = gx
        self._docs_mode = data_docs
        self._context = gx.get_context(mode="ephemeral")
        self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self._docs = data_dir.data_docs
        self._scratch = tempfile.TemporaryDirectory(prefix="shoprec-docs-") if is_remote(
            self._docs) else None
        local_docs = Path(self._scratch.name) if self._scratch else self._docs
        self._context.add_data_docs_site(
            site_name=_SITE,
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(local_docs),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        self._datasource = self._context.data_sources.add_pandas("shoprec")
        self._expectations_dir = expectations_dir
        self._checkpoints: dict[str, tuple[Any, Any]] = {}
        self._deferred: list[Any] | None = None  # pages to render at the end of docs_deferred

    def _checkpoint(self, suite_name: str) -> tuple[Any, Any]:
        """The validation definition and detailed checkpoint of one suite, built on first use
        from its JSON."""
        if suite_name in self._checkpoints:
            return self._checkpoints[suite_name]
        gx = self._gx
        path = self._expectations_dir / f"{suite_name}.json"
        if not path.is_file():
            raise SuiteNotFound(f"no expectation suite {suite_name!r} at {path}")
        spec = json.loads(path.read_text(encoding="utf-8"))
        suite = gx.ExpectationSuite(
            name=spec["name"], expectations=spec["expectations"], meta=spec.get("meta")
        )
        if len(suite.expectations) != len(spec["expectations"]):
            # GX logs and skips invalid expectations; a suite must never silently shrink.
            raise ValueError(f"suite {path} holds expectations GX cannot load")
        suite = self._context.suites.add(suite)
        asset = self._datasource.add_dataframe_asset(suite_name)
        definition = self._context.validation_definitions.add(
            gx.ValidationDefinition(
                name=suite_name,
                data=asset.add_batch_definition_whole_dataframe("batch"),
                suite=suite,
            )
        )
        actions = []
        if self._docs_mode == "all":
            actions.append(gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=[_SITE]))
        detail = self._context.checkpoints.add(
            gx.Checkpoint(
                name=f"shoprec.{suite_name}",
                validation_definitions=[definition],
                actions=actions,
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5},
            )
        )
        self._checkpoints[suite_name] = (definition, detail)
        return definition, detail

    def _screen(self, definition: Any, frame: pd.DataFrame, parameters: dict[str, Any],
                run_id: Any) -> tuple[Any, Any]:
        """Pass/fail of one frame against one suite, run by GX's validator itself.

        The same expectations, parameters and engine as a checkpoint, without what a checkpoint
        adds per run and a passing batch never needs: re-checking that the suite, definition and
        checkpoint are unchanged in the context's stores (``is_fresh``), serialising them, and
        storing the result. That overhead was about half of a batch's validation time; the
        detailed checkpoint, for a failing frame, still does all of it.
        """
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )
        from great_expectations.validator.v1_validator import Validator

        validator = Validator(batch_definition=definition.batch_definition,
                              batch_parameters={"dataframe": frame},
                              result_format="BOOLEAN_ONLY")
        # ``expectation_configurations`` are fresh copies: GX substitutes parameters in place
        with configurations_built_once():
            result = validator.validate_expectation_suite(definition.suite, parameters)
        result.meta["run_id"] = run_id
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=definition.suite.name),
            run_id=run_id, batch_identifier=validator.active_batch_id)
        return key, result

    def screen_many(
        self, suite_name: str, frames: list[pd.DataFrame], parameters: list[dict[str, Any]],
        batch_ids: list[str],
    ) -> list[list[Any] | None]:
        """Screen several batches' frames against one suite in one GX run (``group_screen``):
        per batch, the ids of its (passing) results, or None when it must be validated alone."""
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        from pipelines.data.group_screen import screen_group

        definition, _ = self._checkpoint(suite_name)
        cleared, gx_batch = screen_group(definition.batch_definition,
                                         definition.suite.expectation_configurations,
                                         frames, parameters)
        suite = ExpectationSuiteIdentifier(name=definition.suite.name)
        return [[ValidationResultIdentifier(expectation_suite_identifier=suite,
                                            run_id=RunIdentifier(run_name=batch_id),
                                            batch_identifier=gx_batch)] if ok else None
                for ok, batch_id in zip(cleared, batch_ids, strict=True)]

    def validate(
        self, batch_id: str, frames: dict[str, pd.DataFrame], parameters: dict[str, Any]
    ) -> Validation:
        """Run each frame through the suite of the same name; stop at the first critical failure.

        Stopping early matters for raw suites: a frame that fails them is not worth conforming.
        """
        from great_expectations.core.run_identifier import RunIdentifier

        outcome = Validation()
        for suite_name, frame in frames.items():
            definition, detail = self._checkpoint(suite_name)
            runs = {}
            if self._docs_mode != "all":
                key, screened = self._screen(definition, frame, parameters,
                                             RunIdentifier(run_name=batch_id))
                runs = {key: screened} if screened.success else {}
            if not runs:
                runs = detail.run(
                    batch_parameters={"dataframe": frame},
                    expectation_parameters=parameters,
                    run_id=RunIdentifier(run_name=batch_id),
                ).run_results
                outcome.detailed_ids += list(runs)
            for result_id, result in runs.items():
                outcome.result_ids.append(result_id)
                outcome.results[suite_name] = result
                for item in result.results:
                    if item.success:
                        continue
                    finding = _finding(suite_name, item)
                    if finding.severity == "critical":
                        outcome.critical.append(finding)
                    else:
                        outcome.warnings.append(finding)
            if outcome.critical:
                break
        return outcome

    def build_docs(self, validation: Validation) -> DataPath | None:
        """Render Data Docs pages for a batch that a person should look at; return its page.

        Inside ``docs_deferred`` the pages are rendered when it ends, all in one build (GX
        compiles its templates once per build, so ten pages cost about two)."""
        if self._docs_mode == "off" or not validation.detailed_ids:
            return None
        if self._docs_mode == "problems" and self._deferred is not None:
            self._deferred += validation.detailed_ids
        elif self._docs_mode == "problems":
            self._render(validation.detailed_ids)
        page = validation.detailed_ids[-1]  # the suite that failed last is the one to read first
        urls = self._context.get_docs_sites_urls(site_name=_SITE, resource_identifier=page,
                                                 only_if_exists=False)
        if not urls:
            return None
        local = Path(urls[0]["site_url"].removeprefix("file://"))
        if self._scratch is None:
            return local
        return self._docs / local.relative_to(Path(self._scratch.name)).as_posix()

    @contextmanager
    def docs_deferred(self) -> Iterator[None]:
        """Render the Data Docs pages asked for meanwhile once, at the end."""
        self._deferred = []
        try:
            yield
        finally:
            pages, self._deferred = self._deferred, None
            if pages:
                self._render(pages)

    def _render(self, pages: list[Any]) -> None:
        self._context.build_data_docs(site_names=[_SITE], resource_identifiers=pages)
        if self._scratch is not None:
            put(Path(self._scratch.name), self._docs)


def _finding(suite: str, item: Any) -> Finding:
    config = item.expectation_config
    result = item.result or {}
    error = (item.exception_info or {}).get("exception_message")
    severity = getattr(config.severity, "value", str(config.severity))
    description = config.description or config.type
    if error:
        description += f" (could not evaluate: {error})"
    return Finding(
        suite=suite,
        expectation=config.type,
        column=config.kwargs.get("column"),
        severity=severity,
        description=description,
        unexpected_count=result.get("unexpected_count"),
        examples=[_plain(v) for v in result.get("partial_unexpected_list") or []],
        observed=_plain(result.get("observed_value")),
    )


def _plain(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value
