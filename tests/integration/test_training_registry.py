"""Training end to end on the real slice, against a real MLflow store (sqlite, local artifacts)."""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from support.processes import ROOT

from training.config import TrainConfig
from training.registry import gate


def _result(model: float, popularity: float, champion: float | None = None) -> dict:
    scores = {"model": {"hr@10": model}, "popularity": {"hr@10": popularity}}
    if champion is not None:
        scores["champion"] = {"hr@10": champion}
    return {"tasks": {"upsell": {"metric": "hr@10", "scores": scores}, "service_package": {"skipped": "none"}}}


def test_gate_rules() -> None:
    assert gate(_result(0.30, 0.10, 0.30), tolerance=0.01).promote
    assert gate(_result(0.295, 0.10, 0.30), tolerance=0.01).promote  # within the tolerance
    worse = gate(_result(0.25, 0.10, 0.30), tolerance=0.01)
    assert not worse.promote and "below the champion" in worse.failures[0]
    below_pop = gate(_result(0.10, 0.10), tolerance=0.01)
    assert not below_pop.promote and "not above popularity" in below_pop.failures[0]


def test_prepare_then_evaluate_on_the_real_slice(slice_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    proc = subprocess.run([sys.executable, "-m", "training", "evaluate", "--data", str(slice_dir),
                           "--test-days", "60", "--k", "10", "--out", str(out), "--max-baskets", "1000", "--no-tune"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["data"]["clients"] == 150 and result["split"]["cutoff"]
    for task in ("cross_sell", "next_basket", "basket_completion", "upsell", "service_package"):
        entry = result["tasks"][task]
        assert {"popularity", "model"} <= set(entry["scores"]), task
        assert 0.0 <= entry["scores"]["popularity"][entry["metric"]] <= 1.0
    assert "basket_completion" in proc.stdout


#: The README's name: the trainings below run as a user runs them, with no MODEL_NAME.
NAME = "crm-recommender"
_REGISTERED = re.compile(r"registered (\S+) version (\d+) as @(\w+) \(run (\w+),")


def _hand_run(data: Path, cwd: Path) -> dict:
    """`python -m training train --data DIR --no-tune --promote-if-none` from a plain shell in
    `cwd`: no MLFLOW_*, MODEL_NAME or REDIS_URL set, the repository on PYTHONPATH only."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "TRAIN_")) and k not in ("MODEL_NAME", "REDIS_URL", "ERASURES_FILE")}
    env.update(PYTHONPATH=str(ROOT), TRAIN_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "training", "train", "--data", str(data), "--no-tune",
                           "--promote-if-none", "--max-baskets", "800", "--out", "out"],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = _REGISTERED.search(proc.stdout)
    assert found, proc.stdout[-2000:]
    name, version, alias, run_id = found.groups()
    return {"name": name, "version": version, "alias": alias, "run_id": run_id}


@pytest.fixture(scope="module")
def trained(slice_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Two hand-run trainings into the default store of a fresh directory: v1 (empty registry)
    and v2 (gated against v1), the second loading the first as its champion."""
    root = tmp_path_factory.mktemp("registry")
    repo_db_before = (ROOT / "mlflow.db").exists()
    first = _hand_run(slice_dir, root)
    second = _hand_run(slice_dir, root)
    config = TrainConfig(tracking_uri=f"sqlite:///{(root / 'var' / 'mlflow.db').resolve()}",
                         model_name=NAME, erasures_file=str(root / "erasures.jsonl"), threads=1, redis_url=None)
    client = MlflowClient(config.tracking_uri, registry_uri=config.tracking_uri)
    for summary in (first, second):
        gate_tag = client.get_model_version(NAME, summary["version"]).tags["gate"]
        summary.update(gate=gate_tag == "passed", failures=[] if gate_tag == "passed" else gate_tag.split("; "))
    mlflow.set_tracking_uri(config.tracking_uri)  # for this module's own fluent calls
    return config, first, second, root, repo_db_before


def test_hand_run_training_uses_only_the_configured_store(trained) -> None:
    """Issue 10, item 1: the second training loads the champion from the configured store (it
    used to ask MLflow's default ./mlflow.db and fail) and registers version 2; no other
    mlflow.db appears, neither in the working directory nor at the repository root."""
    config, first, second, root, repo_db_before = trained
    assert (first["name"], first["version"], first["alias"]) == (NAME, "1", "champion")
    assert (second["name"], second["version"]) == (NAME, "2")
    evaluation = MlflowClient(config.tracking_uri, registry_uri=config.tracking_uri).download_artifacts(second["run_id"], "evaluation.json", str(root))
    assert "champion" in json.loads(Path(evaluation).read_text())["tasks"]["cross_sell"]["scores"]
    assert sorted(root.rglob("mlflow.db")) == [root / "var" / "mlflow.db"]
    assert repo_db_before or not (ROOT / "mlflow.db").exists()


def test_first_model_becomes_champion_and_logs_its_evidence(trained) -> None:
    config, first, _, root, _ = trained
    client = MlflowClient(config.tracking_uri, registry_uri=config.tracking_uri)
    assert first["alias"] == "champion"
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == first["version"]
    run = client.get_run(first["run_id"])
    assert "cross_sell.model.ndcg_at_10" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(first["run_id"])}
    assert {"evaluation.json", "data_fingerprint.json", "plots"} <= artifacts
    assert (root / "out" / "metrics.png").exists()


def test_second_training_is_gated_against_the_champion(trained) -> None:
    config, first, second, *_ = trained
    evaluation = mlflow.artifacts.load_dict(f"runs:/{second['run_id']}/evaluation.json")
    assert "champion" in evaluation["tasks"]["cross_sell"]["scores"]
    client = MlflowClient(config.tracking_uri, registry_uri=config.tracking_uri)
    champion = str(client.get_model_version_by_alias(NAME, "champion").version)
    if second["gate"]:
        assert second["alias"] == "champion" and champion == second["version"]
    else:
        assert second["alias"] == "challenger" and champion == first["version"] and second["failures"]


def test_registered_model_answers_like_the_in_memory_one(trained) -> None:
    config, first, *_ = trained
    pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}/{first['version']}")
    rec = pyfunc.unwrap_python_model().recommender
    client_id = str(rec.client_ids[0])
    table = pyfunc.predict(pd.DataFrame({"client_id": [client_id, "nobody"], "kind": ["cross_sell", "all"], "limit": [5, 2]}))
    mine = table[table.client_id == client_id]
    assert mine["item_id"].tolist() == [s["item_id"] for s in rec.suggest(client_id, "cross_sell", 5)]
    assert set(table[table.client_id == "nobody"]["kind"]) >= {"cross_sell"}
    # the artifact reloaded from disk by a fresh process answers the same
    code = ("import mlflow,sys;m=mlflow.pyfunc.load_model(sys.argv[1]).unwrap_python_model().recommender;"
            "print(','.join(s['item_id'] for s in m.suggest(sys.argv[2],'cross_sell',5)))")
    proc = subprocess.run([sys.executable, "-c", code, f"models:/{NAME}/{first['version']}", client_id],
                          capture_output=True, text=True, env={**__import__("os").environ,
                                                              "MLFLOW_TRACKING_URI": config.tracking_uri}, timeout=300)
    assert proc.stdout.strip().splitlines()[-1] == ",".join(mine["item_id"])


def test_a_failed_training_leaves_the_registry_untouched(trained, tmp_path: Path) -> None:
    config, *_ = trained
    client = MlflowClient(config.tracking_uri, registry_uri=config.tracking_uri)
    before = [v.version for v in client.search_model_versions(f"name='{NAME}'")]
    champion = client.get_model_version_by_alias(NAME, "champion").version
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "transactions.csv").write_text("client_id,item_id\n1,2\n")
    proc = subprocess.run([sys.executable, "-m", "training", "train", "--data", str(bad), "--model-name", NAME],
                          capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**__import__("os").environ, "MLFLOW_TRACKING_URI": config.tracking_uri})
    assert proc.returncode == 2 and "missing required column 'timestamp'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert [v.version for v in client.search_model_versions(f"name='{NAME}'")] == before
    assert client.get_model_version_by_alias(NAME, "champion").version == champion


def test_erased_clients_are_left_out_of_training(slice_dir: Path, tmp_path: Path) -> None:
    from features.loader import load_dataset
    from training.erasures import erased_clients, without_clients

    ds = load_dataset(slice_dir)
    victim = str(ds.transactions["client_id"].iloc[0])
    erasures = tmp_path / "erasures.jsonl"
    erasures.write_text(json.dumps({"client_id": victim}) + "\nnot json\n")
    config = TrainConfig(erasures_file=str(erasures), redis_url=None)
    kept = without_clients(ds, erased_clients(config))
    assert victim not in set(kept.transactions["client_id"])
    assert kept.fingerprint["clients"] == ds.fingerprint["clients"] - 1


def test_no_champion_means_none(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'x.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias("nothing", "champion")


def test_a_worse_model_does_not_replace_the_champion(trained) -> None:
    """Through the real registry: a version whose scores fall below the champion's gets @challenger."""
    from scoring.recommender import Recommender
    from training.registry import log_and_register

    config, first, *_ = trained
    client = MlflowClient(config.tracking_uri, registry_uri=config.tracking_uri)
    champion = str(client.get_model_version_by_alias(NAME, "champion").version)
    rec = mlflow.pyfunc.load_model(f"models:/{NAME}/{first['version']}").unwrap_python_model().recommender
    assert isinstance(rec, Recommender)
    result = _result(model=0.20, popularity=0.10, champion=0.30)  # worse than the champion
    outcome = log_and_register(rec, result, config, promote="gate")
    assert outcome["alias"] == "challenger" and not outcome["gate"]
    assert "below the champion" in outcome["failures"][0]
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == champion
    assert str(client.get_model_version_by_alias(NAME, "challenger").version) == outcome["version"]


def test_mlflow_models_serve_answers_with_the_registered_artifact(trained, tmp_path: Path) -> None:
    import os

    import requests
    from support.processes import free_port, start_process, stop_process, wait_for_port

    config, first, *_ = trained
    port = free_port()
    # mlflow starts `uvicorn` by name: the venv's bin/ must be on PATH, as in an activated venv
    env = {**os.environ, "MLFLOW_TRACKING_URI": config.tracking_uri,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = start_process([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{NAME}/{first['version']}",
                          "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                         env, tmp_path / "serve.log")
    try:
        wait_for_port(port, timeout=120, proc=proc)
        body = {"dataframe_split": {"columns": ["client_id", "kind", "limit"], "data": [["nobody", "cross_sell", 3]]}}
        for _ in range(60):
            answer = requests.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=30)
            if answer.status_code != 503:
                break
        assert answer.status_code == 200, answer.text[:500]
        rows = answer.json()["predictions"]
        assert len(rows) == 3 and {"item_id", "reason", "score"} <= set(rows[0])
    finally:
        stop_process(proc)


def test_artifacts_live_next_to_the_sqlite_store(trained) -> None:
    config, first, *_ = trained
    run = MlflowClient(config.tracking_uri, registry_uri=config.tracking_uri).get_run(first["run_id"])
    database = Path(config.tracking_uri.removeprefix("sqlite:///"))
    assert run.info.artifact_uri.startswith((database.parent / "mlartifacts").resolve().as_uri())


# ---- the registered package: requirements, saved as code, formats (issue 10, items 6, 7, 12) ----

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
pickle.load = pickle.loads = refuse
pickle.Unpickler = refuse
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
    client_id = _a_client(config, first["version"])
    proc = subprocess.run([sys.executable, "-c", _NO_PICKLE, str(folder), client_id], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path,
                          env={**os.environ, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(proc.stdout.strip().splitlines()[-1].split(",")) == 3


def _a_client(config: TrainConfig, version: str) -> str:
    rec = mlflow.pyfunc.load_model(f"models:/{NAME}/{version}").unwrap_python_model().recommender
    return str(rec.client_ids[0])


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
    run = client.create_run(client.create_experiment(f"formats-{uuid.uuid4().hex[:8]}"))
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
def legacy(trained, tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainConfig, Path, str]:
    """A store whose champion is a format-1 model, and the current model it was built from."""
    config, first, *_ = trained
    root = tmp_path_factory.mktemp("format-1")
    current = _download_version(config, first["version"], root / "current")
    old = write_format_1(current, root / "old")
    store = config.model_copy(update={"tracking_uri": f"sqlite:///{root / 'mlflow.db'}"})
    _register_folder(store.tracking_uri, NAME, old)
    return store, current, _a_client(config, first["version"])


def test_a_format_1_champion_loads_in_the_trainer_without_unpickling(legacy) -> None:
    """Item 12: load_champion reads the old layout's arrays (its python_model.pkl is no pickle,
    so unpickling would fail) and the model answers as the current one does."""
    from scoring.pyfunc import load_model_folder
    from scoring.recommender import Recommender
    from training.registry import load_champion

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
                                           "MODEL_CACHE_DIR": str(tmp_path / "cache")}))
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
    from training.registry import load_champion

    store, current, _ = legacy
    future = tmp_path / "future"
    shutil.copytree(current, future)
    conf = yaml.safe_load((future / "MLmodel").read_text())
    conf["metadata"]["crm_package_format"] = 99
    (future / "MLmodel").write_text(yaml.safe_dump(conf))
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    version = _register_folder(tracking_uri, NAME, future)
    models = ModelStore(Settings.from_env({"MLFLOW_TRACKING_URI": tracking_uri, "MODEL_NAME": NAME,
                                           "MODEL_CACHE_DIR": str(tmp_path / "cache")}))
    with pytest.raises(ModelRejected, match="package format 99"):
        models.refresh("test")
    assert models.current is None
    with pytest.raises(UnknownModelFormat, match=f"version {version} .* cannot be read by this trainer.*format 99"):
        load_champion(store.model_copy(update={"tracking_uri": tracking_uri}))
