"""``shoprec simulate``: its options and defaults, exit 2 for a non-loopback endpoint or a shop
without planted tastes, exit 1 with the reason (and the JSON) when the endpoint is not there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts import launch
from contracts.settings import get_settings
from pipelines.cli import EXIT_USAGE, main
from pipelines.cli.parser import build_parser
from pipelines.data.synthetic_shop import ShopSpec, generate_shop


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SHOPREC_CONFIG", "SHOPREC_API_TOKEN", "SHOPREC_SERVE_HOST",
                 "SHOPREC_SERVE_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHOPREC_PSEUDONYM_KEY", "test-key")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_defaults_and_help() -> None:
    args = build_parser().parse_args(["simulate"])
    assert (args.shoppers, args.visits_per_shopper, args.seconds, args.max_requests, args.seed,
            args.k, args.concurrency, args.explain, args.endpoint, args.json) == \
        (50, 1, 60.0, 10_000, 0, 10, 4, False, None, False)
    args = build_parser().parse_args(["simulate", "--endpoint", "http://127.0.0.1:3001",
                                      "--shoppers", "5", "--seconds", "2.5", "--explain"])
    assert (args.endpoint, args.shoppers, args.seconds, args.explain) == \
        ("http://127.0.0.1:3001", 5, 2.5, True)


def test_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["simulate", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("--shoppers", "default 50", "--seconds", "default 60.0", "loopback only",
                  "--visits-per-shopper", "--max-requests", "default 10000"):
        assert words in text, words


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_a_remote_endpoint_is_refused_before_anything_is_read(tmp_path: Path, capsys) -> None:
    code = main(["simulate", "--endpoint", "http://10.1.2.3:3000", "--data-dir",
                 str(tmp_path / "absent")])
    assert code == EXIT_USAGE
    assert "loopback endpoints only" in _error(capsys)
    assert not (tmp_path / "absent").exists()


def test_data_without_planted_tastes_is_a_usage_error(tmp_path: Path, capsys) -> None:
    code = main(["simulate", "--endpoint", "http://127.0.0.1:9", "--data-dir", str(tmp_path)])
    assert code == EXIT_USAGE
    assert "no planted preferences" in _error(capsys)


def test_no_endpoint_listening_exits_1_with_the_reason(tmp_path: Path, capsys) -> None:
    generate_shop(tmp_path / "shop", ShopSpec(days=1, users=20, items=40))
    port = launch.free_port()

    code = main(["simulate", "--endpoint", f"http://127.0.0.1:{port}", "--data-dir",
                 str(tmp_path / "shop"), "--shoppers", "3", "--seconds", "10", "--json"])

    assert code == 1
    result = json.loads(capsys.readouterr().out)
    assert result["stopped"].startswith("endpoint unreachable")
    assert result["requests_sent"] == result["recommend_errors"] >= 1
    assert result["visits"] == 0 and result["shoppers"] == 3
