"""The served-traffic log as the endpoint writes it and the drift report reads it.

``serving.traffic_log`` appends one row per ``/recommend`` answer to Parquet parts under
``<local dir>/traffic/date=YYYY-MM-DD/`` (the data directory when it is local);
``pipelines.steps.drift`` compares them with what the model was trained on. A part is written under
a name starting with ``.`` and renamed when complete, so ``PART_GLOB`` only matches whole files.
"""

from __future__ import annotations

from pathlib import Path

from contracts.settings import Settings

FOLDER = "traffic"
PART_GLOB = "date=*/part-*.parquet"
# One row per answer: when, who (pseudonym), which model, the items and scores in rank order,
# the fallback used (null, or "cold_start"); then the answer's request id (outcomes join on it),
# whether it counts in the canary's read-out, and under interleaving the version credited with
# each item (null otherwise: every item is the answer's model's). Parts written before the
# last three columns existed lack them; readers take them as null.
COLUMNS = ("time", "pseudonym", "model_version", "items", "scores", "fallback",
           "request_id", "in_readout", "credited")


def traffic_folder(settings: Settings) -> Path:
    """A local folder, like the feedback inbox: the endpoint appends to it with plain file
    calls, also when the data directory is on an object store (``settings.local_root``)."""
    return settings.local_root / FOLDER
