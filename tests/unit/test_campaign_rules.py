"""Who a campaign leaves out, and why (training/campaign.py), on a synthetic client table."""
from __future__ import annotations

import pandas as pd

from training.campaign import EXCLUSIONS, no_consent, read_suppressions, select
from training.config import TrainConfig

TABLE = pd.DataFrame({"client_id": ["a", "b", "c", "d", "e", "f"],
                      "activity": ["lapsing", "lapsing", "lapsing", "inactive", "lapsing", "lapsing"],
                      "abc": ["A"] * 6, "clv": [1.0] * 6, "p_alive": [0.5] * 6})
NO_MOVES = pd.DataFrame(columns=["client_id", "trigger"])


def _select(trigger: str = "lapsing", **kw):
    config = TrainConfig(control_share=kw.pop("control_share", 0.0))
    args = {"clients": None, "erased": set(), "suppressed": set(), "tired": set(), **kw}
    return select(TABLE, NO_MOVES, None, trigger=trigger, channel="email", config=config, **args)


def test_each_exclusion_is_counted_under_its_first_reason() -> None:
    clients = pd.DataFrame({"client_id": ["c", "e"], "consent_email": ["false", "true"]})
    audience, counts = _select("high_value_at_risk", clients=clients, erased={"a"}, suppressed={"a", "b"},
                               tired={"f"})
    assert list(audience["client_id"]) == ["e"]
    assert counts == {**dict.fromkeys(EXCLUSIONS, 0), "erased": 1, "suppressed": 1, "no_consent": 1,
                      "inactive": 1, "fatigued": 1}


def test_the_inactive_are_reached_only_by_a_win_back_and_control_never() -> None:
    audience, _ = _select("win_back")
    assert list(audience["client_id"]) == ["d"]
    audience, counts = _select("win_back", control_share=1.0)
    assert audience.empty and counts["control"] == 1


def test_consent_and_suppression_files_are_read_as_written(tmp_path) -> None:
    assert no_consent(pd.DataFrame({"client_id": ["x", "y"], "consent_push": ["0", "1"]}), "push") == {"x"}
    assert no_consent(pd.DataFrame({"client_id": ["x"]}), "push") == set()
    (tmp_path / "s.csv").write_text("client_id,reason\nx,asked\ny,bounced\n")
    (tmp_path / "s.txt").write_text("x\n\n z \n")
    assert read_suppressions(tmp_path / "s.csv") == {"x", "y"} and read_suppressions(tmp_path / "s.txt") == {"x", "z"}
