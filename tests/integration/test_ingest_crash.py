"""Real ``shoprec ingest`` processes killed with SIGKILL at random moments, and run two at once,
must leave the data directory exactly as one clean run does (issue 27, parts 4 and 5).

A 40-day synthetic shop is ingested once cleanly; then, into a fresh data directory, 20 ingests
are killed at random delays (before, during and after writes of every kind: landing copies,
curated and rejected files, reports, manifests, the SQLite shopper store) and one more runs to
the end. Curated events (sorted by event id), the accepted batches and the shopper store must
equal the clean run's; no event id may be curated twice. A second test starts two ingests of
overlapping day ranges at the same moment.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from contracts.shopper_store import open_store
from pipelines.data.curated import read_table
from pipelines.data.synthetic_shop import ShopSpec, generate_shop
from pipelines.data.zones import DataDir

SHOP = ShopSpec(days=40, users=1500, items=300, seed=3)
SHOPREC = Path(sys.executable).with_name("shoprec")
KILLS = 20

pytestmark = pytest.mark.long


def _ingest(inbox: Path, data: Path) -> subprocess.Popen:
    env = os.environ | {"SHOPREC_PSEUDONYM_KEY": "crash-key", "TF_USE_LEGACY_KERAS": "1",
                        "GX_ANALYTICS_ENABLED": "false"}
    return subprocess.Popen(
        [str(SHOPREC), "ingest", str(inbox), "--source", "synthetic", "--data-dir", str(data)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-2000:]
    return err


def _state(data: Path) -> dict:
    """What a run leaves: curated events, accepted batches, row accounting, the shopper store."""
    zones = DataDir(data)
    manifests = zones.read_manifests()
    accepted = [m for m in manifests if m["status"] == "accepted"]
    for manifest in accepted:
        assert manifest["rows_in"] == manifest["rows_accepted"] + manifest["rows_rejected"]
    events = read_table(zones, "events")
    assert not events["event_id"].duplicated().any(), "an event was curated twice"
    assert sum(m["rows_accepted"] for m in accepted if m["batch"].startswith(
        "synthetic_events")) == len(events)
    store = open_store(f"sqlite:///{data / 'online' / 'shoppers.sqlite'}", 50).freshness()
    return {
        "events": events.sort_values("event_id").reset_index(drop=True),
        "accepted": sorted(m["batch"] for m in accepted),
        "statuses": sorted({m["status"] for m in manifests}),
        "store": (store.batches, store.events),
    }


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The shop and what one clean ingest of it leaves."""
    root = tmp_path_factory.mktemp("crash")
    generate_shop(root / "shop", SHOP)
    _finish(_ingest(root / "shop", root / "clean"))
    clean = _state(root / "clean")
    assert len(clean["accepted"]) == SHOP.days + 2  # the days, the catalogue, the customers
    return root / "shop", clean


def _assert_same(data: Path, clean: dict) -> None:
    state = _state(data)
    assert state["accepted"] == clean["accepted"]
    assert state["store"] == clean["store"]
    pd.testing.assert_frame_equal(state["events"], clean["events"])
    leftovers = [p for p in data.rglob(".*") if p.name != ".ingest.lock"]
    assert not leftovers, f"temporary files left behind: {leftovers[:3]}"


def _recorded(data: Path) -> int:
    return len(list((data / "batches").glob("*.json"))) if (data / "batches").is_dir() else 0


def _kill_at_random(process: subprocess.Popen, data: Path, rng: random.Random) -> bool:
    """SIGKILL ``process`` at a random moment; True if it died with batches still to do.

    A quarter of the kills come at a random delay from the start (imports, recovery, landing
    the reference data); the rest at a random delay after the run recorded its first batch, so
    that most fall among the writes (a process spends its first seconds importing GX). That
    delay is short: batches validated together are then written within a fraction of a second
    each, so a longer one would mostly find the run finished.
    """
    if rng.random() < 0.25:
        time.sleep(rng.uniform(0.2, 4.0))
    else:
        before, deadline = _recorded(data), time.monotonic() + 60
        while process.poll() is None and _recorded(data) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.25))
    process.send_signal(signal.SIGKILL)
    return process.wait() == -signal.SIGKILL


def test_ingests_killed_at_random_moments_then_rerun_equal_one_clean_run(shop, tmp_path):
    inbox, clean = shop
    data = tmp_path / "data"
    rng = random.Random(27)
    cut_short = sum(_kill_at_random(_ingest(inbox, data), data, rng) for _ in range(KILLS))
    assert cut_short >= KILLS // 2, "most kills must come before the run's end to prove much"
    assert _recorded(data) > 0, "no kill came after a batch was recorded"
    _finish(_ingest(inbox, data))
    _assert_same(data, clean)


def _days(shop: Path, target: Path, days: slice) -> Path:
    """An inbox holding the shop's catalogue and customers and some of its days."""
    (target / "events").mkdir(parents=True)
    for name in ("items.csv", "users.csv", "ground_truth.json"):
        shutil.copy2(shop / name, target / name)
    for path in sorted((shop / "events").glob("*.csv"))[days]:
        shutil.copy2(path, target / "events" / path.name)
    return target


def test_two_ingests_at_once_on_overlapping_days_equal_one_run(shop, tmp_path):
    inbox, clean = shop
    first = _days(inbox, tmp_path / "first", slice(0, 30))
    second = _days(inbox, tmp_path / "second", slice(10, 40))
    data = tmp_path / "data"
    runs = [_ingest(first, data), _ingest(second, data)]
    errors = [_finish(run) for run in runs]
    assert any("another ingest holds" in err for err in errors), errors
    _assert_same(data, clean)
    duplicates = [m for m in DataDir(data).read_manifests() if m["status"] == "duplicate"]
    assert duplicates == [], "the same batch ids are recorded once, under their first run"
