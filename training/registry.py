"""Log a trained model to MLflow, register it, and decide whether it becomes `@champion`.

Order matters: everything that can fail (fitting, evaluation, saving, logging the artifact) runs
before `register_model`, so a run that fails part way leaves the registry untouched. A version
becomes `@champion` only through the promotion gate (or `--promote`); otherwise `@challenger`.

Every MLflow call goes to `TrainConfig.tracking_uri` (clients built on it, the fluent API pointed
at it before the run): MLflow's own default would be a `./mlflow.db` wherever training runs.
The model is saved as code (`scoring/pyfunc.py`, see there), with `scoring/` as its only code and
pip requirements derived from what `scoring/` imports.
"""
from __future__ import annotations

import ast
import json
import logging
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import mlflow.artifacts
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from scoring.pyfunc import (
    ARTIFACT_KEY,
    PACKAGE_FORMAT,
    PACKAGE_FORMAT_KEY,
    UnknownModelFormat,
    load_model_folder,
    signature,
)
from scoring.recommender import Recommender
from training import client_state
from training.config import TrainConfig

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
SCORING = ROOT / "scoring"
#: The model's code: this file is run by MLflow to rebuild the model (models-from-code) ...
MODEL_CODE = SCORING / "pyfunc.py"
#: ... and the package it imports, the only code shipped inside the model.
CODE_PATHS = [str(SCORING)]
#: Needed at run time although `scoring/` never imports them, with why.
RUNTIME_ONLY = {"pyarrow": "pandas reads the model's Parquet tables through it"}


def scoring_imports(package: Path = SCORING) -> set[str]:
    """Top-level names of the third-party modules `package` imports (anywhere in a module,
    lazily too): the standard library and the package itself left out."""
    found: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name not in ("__future__", package.name)}


def _distribution(module: str) -> str:
    """The installed distribution that provides `module` (the one named like it when several do,
    as mlflow, mlflow-skinny and mlflow-tracing all provide `mlflow`)."""
    candidates = metadata.packages_distributions().get(module)
    if not candidates:
        raise RuntimeError(f"scoring imports {module!r}, which no installed distribution provides")
    named = [d for d in candidates if d.lower().replace("_", "-") == module.lower().replace("_", "-")]
    return (named or sorted(candidates))[0]


def _bounds(distribution: str) -> str:
    """`name>=X.Y,<X+1` around the installed version (`<0.Y+1` below 1.0, where minors break)."""
    parts = [int(p) for p in metadata.version(distribution).split(".")[:2] if p.isdigit()]
    major, minor = (parts + [0, 0])[:2]
    upper = f"0.{minor + 1}" if major == 0 else str(major + 1)
    return f"{distribution}>={major}.{minor},<{upper}"


def pip_requirements() -> list[str]:
    """The model's pip requirements: what `scoring/` imports plus `RUNTIME_ONLY`, bounded by the
    installed versions (the ones the model was trained and checked with)."""
    modules = scoring_imports() | set(RUNTIME_ONLY)
    return sorted({_bounds(_distribution(module)) for module in modules})


@dataclass
class GateDecision:
    promote: bool
    failures: list[str] = field(default_factory=list)
    checked: dict[str, dict[str, float | None]] = field(default_factory=dict)


def primary_scores(result: dict[str, Any], ranker: str) -> dict[str, float]:
    """task -> the ranker's primary metric, for every task it was scored on."""
    out = {}
    for task, entry in result["tasks"].items():
        scores = entry.get("scores", {})
        if ranker in scores:
            out[task] = float(scores[ranker][entry["metric"]])
    return out


def gate(result: dict[str, Any], tolerance: float) -> GateDecision:
    """Promote only if, per task, model > popularity and model >= champion - tolerance (same split)."""
    decision = GateDecision(promote=True)
    model = primary_scores(result, "model")
    popularity = primary_scores(result, "popularity")
    champion = primary_scores(result, "champion")
    for task, value in model.items():
        metric = result["tasks"][task]["metric"]
        pop, champ = popularity.get(task), champion.get(task)
        decision.checked[task] = {"model": value, "popularity": pop, "champion": champ}
        if pop is not None and not value > pop:
            decision.failures.append(f"{task}: {metric} {value:.4f} is not above popularity {pop:.4f}")
        if champ is not None and value < champ - tolerance:
            decision.failures.append(f"{task}: {metric} {value:.4f} is below the champion's {champ:.4f} - {tolerance}")
    decision.promote = not decision.failures
    return decision


def registry_client(config: TrainConfig) -> MlflowClient:
    """A client of the configured store, for tracking and registry alike (never a global default)."""
    return MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)


def ensure_experiment(config: TrainConfig) -> str:
    """The configured experiment's id; a new one on a local sqlite store keeps its artifacts next
    to the database (MLflow's default would be ./mlruns under whatever directory training ran in)."""
    client = registry_client(config)
    experiment = client.get_experiment_by_name(config.experiment)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if config.tracking_uri.startswith("sqlite:///"):
        database = Path(config.tracking_uri.removeprefix("sqlite:///"))
        location = (database.parent / "mlartifacts").resolve().as_uri()
    return client.create_experiment(config.experiment, artifact_location=location)


def _artifact_uri(client: MlflowClient, name: str, version: str) -> str:
    """Where a version's files are, resolved by `client` (MLflow would resolve `models:/...`
    through the process-wide registry instead)."""
    uri = client.get_model_version_download_uri(name, version)
    if uri.startswith("models:/m-"):  # an MLflow 3 logged model
        uri = client.get_logged_model(uri.removeprefix("models:/").split("/")[0]).artifact_location
    return uri


def load_champion(config: TrainConfig) -> tuple[Recommender | None, str | None]:
    """The current champion's scoring model and version, or (None, None) when there is none.

    Read from the configured store without unpickling (`scoring.pyfunc.load_model_folder`);
    a champion in a package format this code does not know stops the training with a sentence
    rather than be skipped, since the gate could not compare against it."""
    client = registry_client(config)
    try:
        version = str(client.get_model_version_by_alias(config.model_name, "champion").version)
    except MlflowException:
        return None, None
    with tempfile.TemporaryDirectory(prefix="champion-") as tmp:
        folder = mlflow.artifacts.download_artifacts(
            artifact_uri=_artifact_uri(client, config.model_name, version), dst_path=tmp,
            tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)
        try:
            # the arrays are mapped: they stay readable after the folder is removed (POSIX)
            recommender = load_model_folder(folder)
        except UnknownModelFormat as error:
            raise UnknownModelFormat(
                f"the champion, {config.model_name} version {version} in {config.tracking_uri}, cannot be read "
                f"by this trainer: {error}. Train with the code that registered it, or move @champion to a "
                "version this code reads") from None
    return recommender, version


def _metrics(result: dict[str, Any]) -> dict[str, float]:
    flat = {}
    for task, entry in result["tasks"].items():
        for ranker, scores in entry.get("scores", {}).items():
            for metric, value in scores.items():
                if isinstance(value, int | float):
                    flat[f"{task}.{ranker}.{metric.replace('@', '_at_')}"] = float(value)
    return flat


def log_and_register(rec: Recommender, result: dict[str, Any], config: TrainConfig, *,
                     promote: str = "gate", figures: dict[str, Any] | None = None) -> dict[str, Any]:
    """Log the run and the pyfunc, register a version, set its alias; returns what was done.

    promote: "gate" (default), "force" (`--promote`), or "if-none" (gate, but the first model of
    an empty registry becomes champion anyway: there is no good model it could replace).
    """
    # the fluent calls below (start_run, log_model) use the process-wide tracking URI
    mlflow.set_tracking_uri(config.tracking_uri)
    experiment_id = ensure_experiment(config)
    client = registry_client(config)
    decision = gate(result, config.promotion_tolerance)
    had_champion = "champion" in {t for e in result["tasks"].values() for t in e.get("scores", {})}
    with mlflow.start_run(experiment_id=experiment_id) as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params({f"cf.{k}": v for k, v in rec.meta["params"].items()})
        mlflow.log_params({f"weight.{k}": v for k, v in rec.weights.items()})
        mlflow.log_params({"engine": rec.meta.get("engine", "local"),
                           **{f"engine.{k}": v for k, v in rec.meta.get("engine_run", {}).items()}})
        inner_split = rec.meta.get("tuning", {}).get("inner_split")
        if inner_split:  # how the recipe was chosen: the last days, or a random hold-out and why
            mlflow.log_params({"tuning.inner_split": inner_split["method"] or "none",
                               "tuning.inner_split_why": inner_split["why"][:500]})
        mlflow.log_metrics(_metrics(result))
        mlflow.log_dict(result, "evaluation.json")
        mlflow.log_dict(rec.meta.get("data", {}), "data_fingerprint.json")
        mlflow.log_dict(rec.meta.get("tuning", {}), "tuning.json")
        for name, fig in (figures or {}).items():
            mlflow.log_figure(fig, f"plots/{name}.png")
        run_id = run.info.run_id
        saved = rec
        if config.client_state == "redis":  # every client's key written before anything is registered
            saved = client_state.write(rec, config, run_id)
            mlflow.set_tag(client_state.VERSION_TAG, run_id)
        model_dir = Path(tmp) / "recommender"
        saved.save(model_dir)
        first = str(rec.client_ids[0]) if len(rec.client_ids) else "any-client"  # an item side has none
        example = pd.DataFrame({"client_id": [first], "kind": ["cross_sell"], "limit": [3]})
        info = mlflow.pyfunc.log_model(name="model", python_model=str(MODEL_CODE),
                                       artifacts={ARTIFACT_KEY: str(model_dir)}, code_paths=CODE_PATHS,
                                       signature=signature(), input_example=example,
                                       pip_requirements=pip_requirements(),
                                       metadata={PACKAGE_FORMAT_KEY: PACKAGE_FORMAT})
        # last: only a fully logged model is registered
        version = _register(client, config.model_name, info, run_id)
    if promote == "force" or decision.promote or (promote == "if-none" and not had_champion and _no_champion(client, config)):
        alias = "champion"
    else:
        alias = "challenger"
    if config.client_state == "redis":
        client.set_model_version_tag(config.model_name, version.version, client_state.VERSION_TAG, run_id)
    client.set_registered_model_alias(config.model_name, alias, version.version)
    _let_old_client_state_go(config, client)
    client.set_model_version_tag(config.model_name, version.version, "gate",
                                 "passed" if decision.promote else "; ".join(decision.failures)[:4000])
    _notify(config, alias, str(version.version))
    return {"version": str(version.version), "alias": alias, "run_id": run_id, "gate": decision.promote,
            "failures": decision.failures, "forced": alias == "champion" and not decision.promote}


def _let_old_client_state_go(config: TrainConfig, client: MlflowClient) -> None:
    """After the alias moved, expire the client state of versions no alias points to. Also in model mode when
    a Redis is configured, so that going back from CLIENT_STATE=redis lets the last such versions go."""
    if config.client_state == "redis":
        client_state.let_old_go(config, client)
    elif config.client_state_redis_url or config.redis_url:
        try:
            client_state.let_old_go(config, client)
        except Exception as exc:  # noqa: BLE001 - in model mode, Redis is optional: a finished training stands
            log.warning("could not expire old client state in Redis: %s", exc)


def _register(client: MlflowClient, name: str, info: Any, run_id: str) -> Any:
    """A new version of `name` for the logged model, through the configured registry
    (`mlflow.register_model` would use the process-wide one)."""
    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    return client.create_model_version(name, info.model_uri, run_id, model_id=info.model_id)


def _no_champion(client: MlflowClient, config: TrainConfig) -> bool:
    try:
        client.get_model_version_by_alias(config.model_name, "champion")
    except MlflowException:
        return True
    return False


def _notify(config: TrainConfig, alias: str, version: str) -> None:
    """Tell running services the alias moved (they also poll, so a lost notice only delays)."""
    if not config.redis_url:
        return
    try:
        import redis

        with redis.Redis.from_url(config.redis_url, socket_timeout=2, socket_connect_timeout=2) as r:
            r.publish(config.updates_channel, json.dumps({"name": config.model_name, "alias": alias, "version": version}))
    except Exception as exc:  # noqa: BLE001 - a missed notice must not fail a finished training
        log.warning("could not publish the model update notice to Redis: %s", exc)
