"""Source adapters, looked up by the name the CLI and DAGs use."""

from __future__ import annotations

from pipelines.sources.base import Source, UsageError


def _registry() -> dict[str, type[Source]]:
    from pipelines.sources.csv_mapped import MappedCsvSource
    from pipelines.sources.movielens import MovieLensSource
    from pipelines.sources.online_retail import OnlineRetailSource
    from pipelines.sources.synthetic import SyntheticSource

    return {
        cls.name: cls
        for cls in (SyntheticSource, OnlineRetailSource, MovieLensSource, MappedCsvSource)
    }


SOURCE_NAMES = ("synthetic", "online-retail", "movielens-100k", "csv")


def get_source(name: str, mapping: str | None = None) -> Source:
    """The adapter called ``name``; ``mapping`` is the YAML column mapping the csv source needs."""
    registry = _registry()
    if name not in registry:
        raise UsageError(f"unknown source {name!r}; choose one of {', '.join(SOURCE_NAMES)}")
    cls = registry[name]
    if name == "csv":
        if mapping is None:
            raise UsageError("--source csv needs --mapping FILE (a YAML column mapping)")
        return cls.from_file(mapping)  # type: ignore[attr-defined]
    if mapping is not None:
        raise UsageError(f"--mapping applies to --source csv only, not {name}")
    return cls()
