"""The outcome log: each shopper action joined to the answer it followed, counted once.

``POST /feedback`` appends every event to the inbox (``contracts.feedback``) for training; an
event that joins a served answer (by its request id, or inferred within the attribution window)
and was not counted before is also written here, one row each, to Parquet parts under
``<local dir>/outcomes/date=YYYY-MM-DD/`` like the traffic log (``contracts.traffic``). With the
traffic log this is what a canary's read-out is computed from offline
(``pipelines.steps.readout``) and what a restarted endpoint rebuilds its ledger from, so an
outcome counted before a restart is not counted again after it.
"""

from __future__ import annotations

from pathlib import Path

from contracts.settings import Settings

FOLDER = "outcomes"
PART_GLOB = "date=*/part-*.parquet"
# When the event happened (aware UTC), the answer it joined and its shopper (pseudonym), the
# model version credited with the item, the item and event, the quantity, the revenue (purchase
# quantity times its price, null without one), the inbox event's id and hour file, and whether
# the answer counted in the canary's read-out.
COLUMNS = ("time", "request_id", "pseudonym", "model_version", "item_id", "event_type",
           "quantity", "revenue", "feedback_id", "batch", "in_readout")


def outcomes_folder(settings: Settings) -> Path:
    """Beside the traffic log, on local disk (``settings.local_root``)."""
    return settings.local_root / FOLDER
