"""Who gets which answer (`service.loop.assignment`, `Runtime.model_for`): the control group and
the experiment's arms are pure functions of tenant, salt and id, so every worker, replica and
restart assigns alike, and neither EXPERIMENT nor a new model version moves anyone in or out of
control."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from support.processes import ROOT
from support.service_model_double import CatalogueRecommender

from service.app import create_app
from service.config import Settings
from service.loop.assignment import CONTROL, Arm, assign, parse_experiment

TENANT, SALT = "default", "crm"
ARMS = parse_experiment("champion:90,candidate:10", "champion")
IDS = [f"client-{n}" for n in range(100_000)]

_IN_ANOTHER_PROCESS = """
import json, sys
from service.loop.assignment import assign, parse_experiment
arms = parse_experiment("champion:90,candidate:10", "champion")
print(json.dumps([assign("default", "crm", f"client-{n}", 0.05, arms) for n in range(1000)]))
"""


def _assigned(control_share: float, arms: tuple[Arm, ...], ids: list[str] = IDS) -> list[str]:
    return [assign(TENANT, SALT, subject, control_share, arms) for subject in ids]


def test_two_processes_assign_a_thousand_ids_identically() -> None:
    """Separate interpreters with different hash seeds: nothing rests on Python's own hash."""
    answers = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, "-c", _IN_ANOTHER_PROCESS], capture_output=True, text=True,
                              env=env, cwd=ROOT, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        answers.append(json.loads(proc.stdout))
    here = _assigned(0.05, ARMS, IDS[:1000])
    assert answers[0] == answers[1] == here
    assert set(here) == {CONTROL, "champion", "candidate"}


@pytest.mark.parametrize("share", [0.05, 0.2, 0.5])
def test_control_share_holds_within_one_point_over_100k_ids(share: float) -> None:
    assigned = _assigned(share, ARMS)
    assert abs(assigned.count(CONTROL) / len(IDS) - share) <= 0.01


@pytest.mark.parametrize("experiment", ["champion:90,candidate:10", "champion:50,candidate:50",
                                        "champion:1,candidate:1,third:2"])
def test_arm_weights_hold_within_one_point_over_the_non_control_ids(experiment: str) -> None:
    arms = parse_experiment(experiment, "champion")
    counts = Counter(variant for variant in _assigned(0.05, arms) if variant != CONTROL)
    total, weights = sum(counts.values()), sum(arm.weight for arm in arms)
    for arm in arms:
        assert abs(counts[arm.alias] / total - arm.weight / weights) <= 0.01, (arm, counts)


def test_changing_the_experiment_moves_nobody_into_or_out_of_control() -> None:
    def control(arms: tuple[Arm, ...]) -> set[str]:
        return {subject for subject, variant in zip(IDS, _assigned(0.05, arms), strict=True) if variant == CONTROL}

    without = control(parse_experiment("", "champion"))
    assert without == control(ARMS) == control(parse_experiment("champion:50,candidate:30,third:20", "champion"))
    assert without == control(parse_experiment("", "another-alias"))


def test_changing_the_model_version_does_not_change_assignment(tmp_path: Path) -> None:
    """Through `Runtime.model_for`: the arms' versions change, every subject's variant stays."""
    settings = Settings.from_env({"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/none.db",
                                  "MODEL_CACHE_DIR": str(tmp_path / "model-cache"),
                                  "EXPERIMENT": "champion:50,candidate:50", "CONTROL_SHARE": "0.1"})
    rt = create_app(settings, watch=False).extensions["crm"]
    subjects = [*IDS[:2000], *(f"visitor:v{n}" for n in range(500))]

    def variants() -> list[str]:
        return [rt.model_for(subject)[0] for subject in subjects]

    for alias, version in (("champion", "1"), ("candidate", "2")):
        rt.arms.stores[alias].install(CatalogueRecommender(tag=alias), version)
    before = variants()
    for alias, version in (("champion", "3"), ("candidate", "4")):
        rt.arms.stores[alias].install(CatalogueRecommender(tag=f"{alias}-new"), version)
    assert variants() == before
    assert before == _assigned(0.1, settings.arms, subjects)
    assert {rt.model_for(s)[1].version for s, v in zip(subjects, before, strict=True) if v == "candidate"} == {"4"}
    assert {rt.model_for(s)[1].version for s, v in zip(subjects, before, strict=True) if v in ("champion", CONTROL)} == {"3"}
