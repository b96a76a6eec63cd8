"""The arms of an online A/B test in one process (`service.model.arms`, `Runtime.model_for`), and
the local copies of several aliases of one model: in-process models, no registry (the same
through a real MLflow server: tests/integration/test_service_arms.py)."""
from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError
from support.service_model_double import CatalogueRecommender

from service.app import create_app
from service.config import Settings
from service.loop.assignment import CONTROL, assign
from service.metrics import ARM_FALLBACKS
from service.model.local_copy import LocalCopies, VersionSource
from service.runtime import Runtime


def settings_for(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/none.db",
                              "MODEL_CACHE_DIR": str(tmp_path / "model-cache"), "AUTH_DISABLED": "true", **env})


def runtime_for(tmp_path: Path, **env: str) -> Runtime:
    return create_app(settings_for(tmp_path, **env), watch=False).extensions["crm"]


def subjects_of(rt: Runtime, variant: str, count: int = 20) -> list[str]:
    settings, found = rt.settings, []
    for n in range(10_000):
        subject = f"client-{n}"
        if assign(settings.tenant, settings.assignment_salt, subject, settings.control_share,
                  settings.arms) == variant:
            found.append(subject)
            if len(found) == count:
                return found
    raise AssertionError(f"no {variant} subjects")


def test_each_arm_serves_its_own_version_and_control_the_primary(tmp_path: Path) -> None:
    rt = runtime_for(tmp_path, EXPERIMENT="champion:50,candidate:50")
    assert set(rt.arms.stores) == {"champion", "candidate"} and rt.arms.stores["champion"] is rt.models
    assert rt.arms.stores["candidate"].settings.model_alias == "candidate"
    rt.models.install(CatalogueRecommender(), "1")
    rt.arms.stores["candidate"].install(CatalogueRecommender(tag="b"), "2")
    for variant, version in (("champion", "1"), ("candidate", "2"), (CONTROL, "1")):
        for subject in subjects_of(rt, variant):
            served, model = rt.model_for(subject)
            assert (served, model.version) == (variant, version)
    assert rt.model_for(None) == ("champion", rt.models.current)


def test_anonymous_answers_get_the_primary_never_control(tmp_path: Path) -> None:
    rt = runtime_for(tmp_path, EXPERIMENT="champion:50,candidate:50", CONTROL_SHARE="1")
    rt.models.install(CatalogueRecommender(), "1")
    assert rt.model_for("anyone")[0] == CONTROL
    assert rt.model_for(None)[0] == "champion"


def test_an_arm_serving_no_version_is_answered_by_the_primary_and_counted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(settings_for(tmp_path, EXPERIMENT="champion:90,candidate:10", CONTROL_SHARE="0"), watch=False)
    rt = app.extensions["crm"]
    rt.models.install(CatalogueRecommender(), "5")
    fallbacks = ARM_FALLBACKS.labels("candidate", "not-loaded")
    before = fallbacks._value.get()
    subjects = subjects_of(rt, "candidate", 5)
    with caplog.at_level(logging.WARNING, logger="service.model.arms"):
        assert {rt.model_for(subject)[0] for subject in subjects} == {"champion"}
    assert fallbacks._value.get() == before + 5
    assert [r.message for r in caplog.records].count(
        "experiment arm serves no version: the primary model answers its share") == 1
    ready = app.test_client().get("/readyz").get_json()
    arms = {arm["alias"]: arm for arm in ready["arms"]}
    assert arms["champion"] == {"alias": "champion", "weight": 90.0, "status": "serving", "version": "5",
                                "source": "direct", "loaded_at": arms["champion"]["loaded_at"],
                                "served_by": "champion"}
    assert arms["candidate"]["status"] == "not-loaded" and arms["candidate"]["served_by"] == "champion"
    rt.arms.stores["candidate"].install(CatalogueRecommender(tag="b"), "6")
    assert {rt.model_for(subject)[0] for subject in subjects} == {"candidate"}


def test_readyz_and_metrics_name_every_arms_version(tmp_path: Path) -> None:
    app = create_app(settings_for(tmp_path, EXPERIMENT="champion:90,candidate:10"), watch=False)
    rt = app.extensions["crm"]
    rt.models.install(CatalogueRecommender(), "3")
    rt.arms.stores["candidate"].install(CatalogueRecommender(tag="b"), "4")
    client = app.test_client()
    ready = client.get("/readyz").get_json()
    assert ready["model"]["version"] == "3"
    assert [(arm["alias"], arm["version"], arm["source"]) for arm in ready["arms"]] == [
        ("champion", "3", "direct"), ("candidate", "4", "direct")]
    text = client.get("/metrics").get_data(as_text=True)
    assert 'crm_model_version{alias="champion",name="crm-recommender"} 3.0' in text
    assert 'crm_model_version{alias="candidate",name="crm-recommender"} 4.0' in text


def test_without_experiment_one_arm_the_primary(tmp_path: Path) -> None:
    rt = runtime_for(tmp_path, MODEL_ALIAS="production", CONTROL_SHARE="0")
    assert list(rt.arms.stores) == ["production"]
    rt.models.install(CatalogueRecommender(), "9")
    assert rt.model_for("c1") == ("production", rt.models.current)


def test_the_gates_challenger_alias_is_never_an_arm(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="EXPERIMENT|experiment"):
        settings_for(tmp_path, EXPERIMENT="champion:90,challenger:10")
    with pytest.raises(ValidationError):
        settings_for(tmp_path, EXPERIMENT="champion:90,candidate:x")


# ---- local copies of several aliases ----

def _publisher(tmp_path: Path) -> Callable[[str, Path], str]:
    """A download that copies a folder published per artifact URI."""
    def download(uri: str, into: Path) -> str:
        published = tmp_path / "published" / uri.rsplit("/", 1)[-1]
        if not published.exists():
            published.mkdir(parents=True)
            (published / "MLmodel").write_text(f"flavors: {{}}\n# {uri}\n")
        shutil.copytree(published, into / "model")
        return str(into / "model")

    return download


def test_two_aliases_of_one_model_keep_their_own_last_good_copy(tmp_path: Path) -> None:
    copies, download = LocalCopies(tmp_path / "cache" / "m"), _publisher(tmp_path)
    champion = copies.fetch(VersionSource("1", "m-one", "file:///v1"), download)
    copies.save_last_good(champion, "m", "champion")
    for version in range(2, 8):  # the candidate moves often: the champion's copy is never pruned
        candidate = copies.fetch(VersionSource(str(version), f"m-{version}", f"file:///v{version}"), download)
        copies.save_last_good(candidate, "m", "candidate")
    assert copies.last_good("champion") == champion
    assert copies.last_good("candidate") == candidate
    assert copies.last_good("other") is None
    copies.forget("candidate")
    assert copies.last_good("candidate") is None and copies.last_good("champion") == champion


def test_a_last_good_record_from_before_aliases_had_their_own_is_still_served(tmp_path: Path) -> None:
    copies = LocalCopies(tmp_path / "cache" / "m")
    copy = copies.fetch(VersionSource("1", "m-one", "file:///v1"), _publisher(tmp_path))
    (copies.root / "last_good.json").write_text(json.dumps(
        {"name": "m", "alias": "champion", "version": "1", "key": copy.key, "identity": copy.identity}))
    assert copies.last_good("champion") == copy and copies.last_good("candidate") is None
    copies.save_last_good(copy, "m", "champion")
    assert not (copies.root / "last_good.json").exists() and copies.last_good("champion") == copy
