"""The registered package: its requirements, saved as code (no pickle), and the formats it reads
(issue 10, items 6, 7 and 12). The trainings it inspects are the session's `trained` fixture."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from support.processes import ROOT

from training.config import TrainConfig
from training.registry import load_champion

#: The trainings run as a user runs them, with no MODEL_NAME: the default name.
NAME = TrainConfig.model_fields["model_name"].default



def _download_version(config: TrainConfig, version: str, into: Path) -> Path:
    """Version `version`'s MLflow model folder, downloaded from the configured store."""
    client = MlflowClient(config.tracking_uri, registry_uri=config.tracking_uri)
    uri = client.get_model_version_download_uri(NAME, version)
    if uri.startswith("models:/m-"):
        uri = client.get_logged_model(uri.removeprefix("models:/").split("/")[0]).artifact_location
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(into),
                                                    tracking_uri=config.tracking_uri))


def _third_party_imports(package: Path) -> set[str]:
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names.add((node.module or "").partition(".")[0])
    return {n for n in names if n and n not in sys.stdlib_module_names and n not in ("__future__", "scoring")}


def test_the_models_requirements_cover_every_import_of_scoring(trained, tmp_path: Path) -> None:
    """Item 6: each third-party module scoring/ imports (threadpoolctl among them) is provided by a
    distribution the registered model requires, with a lower and an upper bound."""
    from importlib.metadata import packages_distributions

    from packaging.requirements import Requirement

    config, first, *_ = trained
    folder = _download_version(config, first["version"], tmp_path)
    required = {Requirement(line).name.lower(): Requirement(line)
                for line in (folder / "requirements.txt").read_text().splitlines() if line.strip()}
    imports = _third_party_imports(ROOT / "scoring")
    assert "threadpoolctl" in imports
    providers = packages_distributions()
    for module in sorted(imports):
        covered = [d for d in providers.get(module, []) if d.lower() in required]
        assert covered, f"scoring imports {module}, which no requirement of the model provides: {sorted(required)}"
        operators = {spec.operator for spec in required[covered[0].lower()].specifier}
        assert operators == {">=", "<"}, required[covered[0].lower()]
    assert "pyarrow" in required  # pandas reads the Parquet tables through it


_NO_PICKLE = """
import pickle, sys
def refuse(*args, **kwargs):
    raise AssertionError("a pickle was loaded")
class RefusingUnpickler(pickle.Unpickler):  # a class still: libraries subclass it at import (pyspark)
    def load(self):
        refuse()
pickle.load = pickle.loads = refuse
pickle.Unpickler = RefusingUnpickler
import cloudpickle
cloudpickle.load = cloudpickle.loads = refuse
import mlflow.pyfunc
import pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
frame = pd.DataFrame({"client_id": [sys.argv[2], "nobody"], "kind": ["cross_sell", "all"], "limit": [3, 2]})
table = model.predict(frame)
print(",".join(table[table.client_id == sys.argv[2]]["item_id"]))
"""


def test_the_registered_model_is_code_and_loads_without_a_pickle(trained, tmp_path: Path) -> None:
    """Item 7: no python_model.pkl, the pyfunc is models-from-code with scoring/ its only code, and
    a process in which every pickle load raises loads the model and predicts."""
    import yaml

    config, first, *_ = trained
    folder = _download_version(config, first["version"], tmp_path)
    assert not list(folder.rglob("*.pkl"))
    conf = yaml.safe_load((folder / "MLmodel").read_text())
    flavor = conf["flavors"]["python_function"]
    assert "python_model" not in flavor and flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert (folder / Path(flavor["model_code_path"]).name).is_file()
    assert conf["metadata"]["crm_package_format"] == 2
    assert sorted(p.name for p in (folder / "code").iterdir()) == ["scoring"]
    client_id = _a_client(folder)
    proc = subprocess.run([sys.executable, "-c", _NO_PICKLE, str(folder), client_id], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path,
                          env={**os.environ, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(proc.stdout.strip().splitlines()[-1].split(",")) == 3


def _a_client(model_folder: Path) -> str:
    """A client the model in `model_folder` knows (read without MLflow's default store)."""
    from scoring.pyfunc import load_model_folder

    return str(load_model_folder(model_folder).client_ids[0])


def write_format_1(current: Path, target: Path) -> Path:
    """The layout models were registered in before issue 10, built from a current model folder:
    the same artifacts/recommender (meta.json with model_format 2, arrays/*.npy, *.parquet), an
    MLmodel naming a cloudpickled `training.scoring.pyfunc.RecommenderPyfunc` and code paths
    training/ and features/. python_model.pkl holds bytes that are no pickle: reading the model
    must never open it."""
    import yaml

    shutil.copytree(current / "artifacts", target / "artifacts")
    for package in ("training", "features"):
        (target / "code" / package).mkdir(parents=True)
        (target / "code" / package / "__init__.py").write_text("")
    (target / "python_model.pkl").write_bytes(b"\x80\x05 not a pickle: loading must not read this file")
    conf = yaml.safe_load((current / "MLmodel").read_text())
    flavor = conf["flavors"]["python_function"]
    for key in ("model_code_path", "config"):
        flavor.pop(key, None)
    flavor.update(loader_module="mlflow.pyfunc.model", python_model="python_model.pkl", code="code")
    conf.pop("metadata", None)
    conf.pop("model_id", None)
    (target / "MLmodel").write_text(yaml.safe_dump(conf))
    for name in ("requirements.txt", "conda.yaml", "python_env.yaml"):
        shutil.copy(current / name, target / name)
    return target


def _register_folder(tracking_uri: str, name: str, folder: Path, alias: str = "champion") -> str:
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    # artifacts beside the store, not in ./mlruns of whatever directory the tests run from
    artifacts = (folder.parent / "mlartifacts").resolve().as_uri()
    run = client.create_run(client.create_experiment(f"formats-{uuid.uuid4().hex[:8]}", artifact_location=artifacts))
    client.log_artifacts(run.info.run_id, str(folder), "model")
    client.set_terminated(run.info.run_id)
    try:
        client.create_registered_model(name)
    except MlflowException:
        pass
    version = client.create_model_version(name, f"{run.info.artifact_uri}/model", run.info.run_id)
    client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


@pytest.fixture(scope="module")
def legacy(trained_runs, tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainConfig, Path, str]:
    """A store whose champion is a format-1 model, and the current model it was built from."""
    config, first, *_ = trained_runs
    root = tmp_path_factory.mktemp("format-1")
    current = _download_version(config, first["version"], root / "current")
    old = write_format_1(current, root / "old")
    store = config.model_copy(update={"tracking_uri": f"sqlite:///{root / 'mlflow.db'}"})
    _register_folder(store.tracking_uri, NAME, old)
    return store, current, _a_client(current)


def test_a_format_1_champion_loads_in_the_trainer_without_unpickling(legacy) -> None:
    """Item 12: load_champion reads the old layout's arrays (its python_model.pkl is no pickle,
    so unpickling would fail) and the model answers as the current one does."""
    from scoring.pyfunc import load_model_folder
    from scoring.recommender import Recommender

    store, current, client_id = legacy
    champion, version = load_champion(store)
    assert version == "1" and isinstance(champion, Recommender)
    assert champion.meta["model_format"] == 2
    expected = load_model_folder(current).suggest(client_id, "cross_sell", 5)
    assert [s["item_id"] for s in champion.suggest(client_id, "cross_sell", 5)] == [s["item_id"] for s in expected]


def test_a_format_1_model_serves_in_the_service_without_unpickling(legacy, tmp_path: Path) -> None:
    from service.config import Settings
    from service.model.store import ModelStore

    store, _, client_id = legacy
    models = ModelStore(Settings.from_env({"MLFLOW_TRACKING_URI": store.tracking_uri, "MODEL_NAME": NAME,
                                           "MODEL_CACHE_DIR": str(tmp_path / "cache"), "EVENTS_DB_URL": f"sqlite:///{tmp_path}/events.db"}))
    loaded = models.refresh("test").current
    assert loaded is not None and loaded.version == "1" and loaded.source == "registry"
    assert loaded.recommender.knows_client(client_id) and loaded.recommender.suggest(client_id, "cross_sell", 3)


def test_an_unknown_package_format_is_refused_with_a_sentence(legacy, tmp_path: Path) -> None:
    """A model recording a package format this code does not know: the service rejects it
    (ModelRejected, nothing serves) and the trainer stops with a sentence naming the version."""
    import yaml

    from scoring.pyfunc import UnknownModelFormat
    from service.config import Settings
    from service.model.errors import ModelRejected
    from service.model.store import ModelStore

    store, current, _ = legacy
    future = tmp_path / "future"
    shutil.copytree(current, future)
    conf = yaml.safe_load((future / "MLmodel").read_text())
    conf["metadata"]["crm_package_format"] = 99
    (future / "MLmodel").write_text(yaml.safe_dump(conf))
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    version = _register_folder(tracking_uri, NAME, future)
    models = ModelStore(Settings.from_env({"MLFLOW_TRACKING_URI": tracking_uri, "MODEL_NAME": NAME,
                                           "MODEL_CACHE_DIR": str(tmp_path / "cache"), "EVENTS_DB_URL": f"sqlite:///{tmp_path}/events.db"}))
    with pytest.raises(ModelRejected, match="package format 99"):
        models.refresh("test")
    assert models.current is None
    with pytest.raises(UnknownModelFormat, match=f"version {version} .* cannot be read by this trainer.*format 99"):
        load_champion(store.model_copy(update={"tracking_uri": tracking_uri}))
