"""`python -m training campaign` with the champion trained on the real slice (the session's hand-run trainings)
and a real event store: the export, its exclusions, and the attribution of a purchase to an exported
recommendation_id."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from eventstore import EventStore
from service.effect.attribution import attribute
from training.__main__ import main


@pytest.fixture()
def registry(trained_runs, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    config = trained_runs[0]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", config.tracking_uri)
    monkeypatch.setenv("ERASURES_FILE", str(tmp_path / "erasures.jsonl"))
    url = f"sqlite:///{tmp_path}/campaign-events.db"
    monkeypatch.setenv("EVENTS_DB_URL", url)
    return url


def test_a_dry_run_prints_counts_and_stores_nothing(registry: str, slice_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["campaign", "--data", str(slice_dir), "--trigger", "lapsing", "--channel", "push",
                 "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "excluded control:" in printed and "in the audience" in printed
    with EventStore(registry) as store:
        assert store.earliest_exposure("default") is None


def test_an_exported_recommendation_is_attributed_when_the_client_buys(registry: str, slice_dir: Path,
                                                                       tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["campaign", "--data", str(slice_dir), "--trigger", "win_back", "--channel", "email",
                 "--limit", "2", "--dry-run"]) == 0
    suppressed = "1999999"  # not a client: the file is read, the count says whether it mattered
    (tmp_path / "suppress.txt").write_text(f"{suppressed}\n")
    out = tmp_path / "audience.jsonl"
    assert main(["campaign", "--data", str(slice_dir), "--trigger", "win_back", "--channel", "email",
                 "--limit", "2", "--suppress", str(tmp_path / "suppress.txt"), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(1 <= len(r["offers"]) <= 2 and r["activity"] == "inactive" for r in rows)
    assert len({r["campaign_id"] for r in rows}) == 1 and len({r["recommendation_id"] for r in rows}) == len(rows)
    first = rows[0]
    with EventStore(registry) as store:
        sent = store.exposure("default", first["recommendation_id"])
        assert sent["channel"] == "email" and sent["client_id"] == first["client_id"]
        store.add_events("default", [{"type": "purchase", "client_id": first["client_id"],
                                      "item_id": first["offers"][0]["item_id"], "quantity": 1.0, "price": 3.0,
                                      "occurred_at": sent["shown_at"] + timedelta(hours=2)}])
        start, end = sent["shown_at"] - timedelta(minutes=1), sent["shown_at"] + timedelta(days=1)
        purchases = store.purchases("default", start, end)
        owed = attribute(store.exposures_between("default", start, end), purchases, days=14)
    assert owed["recommendation_id"].tolist() == [first["recommendation_id"]]
    assert owed["channel"].tolist() == ["email"]


def test_bad_arguments_are_sentences(registry: str, slice_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["campaign", "--data", str(slice_dir), "--trigger", "lapsing", "--channel", "email",
                 "--out", "audience.xlsx"]) == 2
    assert "--out must be a .csv or .jsonl" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["campaign", "--data", str(slice_dir), "--trigger", "bored", "--channel", "email", "--dry-run"])
