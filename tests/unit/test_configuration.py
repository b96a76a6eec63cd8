"""The configuration of both sides: parsing, errors naming the variable, and the README's table.

Each key is declared once in code (service/config.py, training/config.py); the README's
"Configuration" table is written by hand, so this checks it says what the code does: every key,
its default, who reads it, and no key the code lacks.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings
from support.processes import ROOT

from envconfig import reading
from scoring.contract import MODEL_UPDATES_CHANNEL
from service.config import Settings
from training.config import TrainConfig

CONFIGS: dict[str, type[BaseSettings]] = {"service": Settings, "trainer": TrainConfig}


def variable(name: str, field: FieldInfo) -> str:
    return field.validation_alias if isinstance(field.validation_alias, str) else name.upper()


def shown(value: Any) -> str:
    """A default as the README writes it."""
    if value is None or value == ():
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(shown(part) for part in value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def code_table() -> dict[str, tuple[str, str]]:
    """{variable: (default as shown, "service" | "trainer" | "both")} from the code."""
    table: dict[str, tuple[str, str]] = {}
    for side, config in CONFIGS.items():
        for name, field in config.model_fields.items():
            key, default = variable(name, field), shown(field.get_default(call_default_factory=True))
            if key in table:
                assert table[key][0] == default, f"{key}: the service's default {table[key][0]!r}, the trainer's {default!r}"
                table[key] = (default, "both")
            else:
                table[key] = (default, side)
    return table


def readme_table() -> dict[str, tuple[str, str]]:
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Configuration\n", 1)[1].split("\n## ", 1)[0]
    table: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("| `") or len(cells) < 4:
            continue
        key = cells[0].strip("`")
        quoted = re.search(r"`([^`]*)`", cells[1])
        assert key not in table, f"{key} appears twice in the README"
        table[key] = (quoted.group(1) if quoted else cells[1], cells[2])
    return table


def test_the_readme_table_lists_every_key_with_its_default_and_reader() -> None:
    code, readme = code_table(), readme_table()
    assert len(code) > 40  # both configs were read
    assert sorted(set(code) - set(readme)) == [], "keys missing from the README"
    assert sorted(set(readme) - set(code)) == [], "README keys the code does not have"
    differing = {key: (readme[key], code[key]) for key in code if readme[key] != code[key]}
    assert differing == {}, "README (default, read by) vs code"


def test_every_key_says_what_it_changes() -> None:
    for config in CONFIGS.values():
        for name, field in config.model_fields.items():
            assert field.description and len(field.description) > 10, f"{config.__name__}.{name}"


def test_both_sides_default_to_the_contract_channel_and_follow_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.from_env({}).model_updates_channel == MODEL_UPDATES_CHANNEL == TrainConfig().updates_channel
    monkeypatch.setenv("MODEL_UPDATES_CHANNEL", "shop-b:updates")
    assert TrainConfig().updates_channel == "shop-b:updates"
    assert Settings.from_env({"MODEL_UPDATES_CHANNEL": "shop-b:updates"}).model_updates_channel == "shop-b:updates"


def test_relative_paths_are_resolved_from_the_working_directory(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = Settings.from_env({"SERVICE_STATE_DIR": "state"})
    assert settings.model_cache_dir == tmp_path.resolve() / "var" / "model-cache"
    assert settings.service_state_dir == tmp_path.resolve() / "state"
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path.resolve() / 'var' / 'mlflow.db'}"
    assert TrainConfig().tracking_uri == settings.mlflow_tracking_uri
    assert Settings.from_env({"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}).mlflow_tracking_uri == \
        "http://127.0.0.1:5000"


def test_trainer_reads_lists_and_empty_values_like_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALS_FACTORS", " 8, 16 ")
    monkeypatch.setenv("ALS_REGULARIZATION", "0.01,0.1")
    monkeypatch.setenv("TRAIN_THREADS", "3")
    monkeypatch.setenv("MLFLOW_EXPERIMENT", "")
    for other in ("TRAIN_K", "TRAIN_SEED"):
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv("K", "3")  # a field's name is not its variable
    monkeypatch.setenv("SEED", "5")
    config = TrainConfig()
    assert (config.k, config.seed) == (10, 0)
    assert (config.als_factors, config.als_regularization, config.threads) == ((8, 16), (0.01, 0.1), 3)
    assert config.experiment == "crm-recommender"
    assert TrainConfig(threads=1).threads == 1  # by field name, as the tests and the CLI build it
    assert config.model_copy(update={"k": 5}).k == 5 and config.k == 10


@pytest.mark.parametrize("name, raw", [("TRAIN_K", "ten"), ("ALS_FACTORS", "16,x"), ("TRAIN_TEST_DAYS", "0")])
def test_trainer_rejects_bad_values_naming_the_variable(name: str, raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, raw)
    with pytest.raises(ValueError, match=name):
        TrainConfig()


def test_settings_overrides_are_validated_and_settings_are_frozen() -> None:
    settings = Settings.from_env({}, workers="3")
    assert settings.workers == 3
    with pytest.raises(ValueError, match="workers"):  # an override names the field it set
        Settings.from_env({}, workers=0)
    with pytest.raises(ValueError):
        settings.port = 1  # type: ignore[misc]


def test_settings_both_sides_declare_share_one_default() -> None:
    """The trainer writes what the service reads: where client state lives, the cluster switch, the
    event store, the model's name and the tenant default alike on both sides."""
    with reading({}):
        trainer = TrainConfig()
    service = Settings.from_env({})
    for name in ("client_state", "redis_cluster", "events_db_url", "model_name", "tenant"):
        assert getattr(service, name) == getattr(trainer, name), name


@pytest.mark.parametrize("tenant", ["shop{a}", "shop a", "{x"])
def test_a_tenant_that_would_break_the_cluster_hash_tag_is_refused_on_both_sides(
        tenant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="TENANT|tenant"):
        Settings.from_env({"TENANT": tenant})
    monkeypatch.setenv("TENANT", tenant)
    with pytest.raises(ValueError, match="TENANT|tenant"):
        TrainConfig()
    monkeypatch.setenv("TENANT", "shop-b.eu")
    assert TrainConfig().tenant == "shop-b.eu" == Settings.from_env({"TENANT": "shop-b.eu"}).tenant
