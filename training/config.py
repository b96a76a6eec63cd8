"""Trainer configuration: every knob read from the environment in one place, with its default.

The README's configuration table mirrors this module. Command-line flags override these values
for one run; nothing else reads the environment.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def default_tracking_uri() -> str:
    """Local sqlite MLflow store under ./var unless MLFLOW_TRACKING_URI says otherwise."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('var').resolve() / 'mlflow.db'}"


@dataclass(frozen=True)
class TrainConfig:
    """What the trainer does, and how hard it tries."""

    #: MLFLOW_TRACKING_URI: where runs and the model registry live.
    tracking_uri: str = field(default_factory=default_tracking_uri)
    #: MODEL_NAME: the registered model's name.
    model_name: str = field(default_factory=lambda: _env("MODEL_NAME", "crm-recommender"))
    #: MLFLOW_EXPERIMENT: the experiment runs are logged under.
    experiment: str = field(default_factory=lambda: _env("MLFLOW_EXPERIMENT", "crm-recommender"))
    #: TRAIN_THREADS: threads for implicit and BLAS, and rankers evaluated at once (0 = all cores).
    threads: int = field(default_factory=lambda: int(_env("TRAIN_THREADS", "0")))
    #: TRAIN_SEED: one seed for every random choice (ALS init, held-out items).
    seed: int = field(default_factory=lambda: int(_env("TRAIN_SEED", "0")))
    #: TRAIN_TEST_DAYS: the last days held out as the test.
    test_days: int = field(default_factory=lambda: int(_env("TRAIN_TEST_DAYS", "60")))
    #: TRAIN_TUNE_DAYS: the last days of the training part used to choose hyper-parameters.
    tune_days: int = field(default_factory=lambda: int(_env("TRAIN_TUNE_DAYS", "30")))
    #: TRAIN_K: suggestions scored per query.
    k: int = field(default_factory=lambda: int(_env("TRAIN_K", "10")))
    #: ALS_FACTORS: candidate factor counts tried on the inner split (comma-separated).
    als_factors: tuple[int, ...] = field(default_factory=lambda: tuple(
        int(x) for x in _env("ALS_FACTORS", "16,32").split(",")))
    #: ALS_REGULARIZATION: candidate regularisation values tried (comma-separated).
    als_regularization: tuple[float, ...] = field(default_factory=lambda: tuple(
        float(x) for x in _env("ALS_REGULARIZATION", "0.05").split(",")))
    #: ALS_ITERATIONS: ALS sweeps.
    als_iterations: int = field(default_factory=lambda: int(_env("ALS_ITERATIONS", "15")))
    #: ALS_ALPHA: confidence scaling of the BM25-weighted evidence.
    als_alpha: float = field(default_factory=lambda: float(_env("ALS_ALPHA", "0.5")))
    #: CF_ALGORITHM: "als" (default) or "bpr".
    cf_algorithm: str = field(default_factory=lambda: _env("CF_ALGORITHM", "als"))
    #: RECENCY_HALF_LIFE_DAYS: half-life of a purchase's weight in replenishment scores.
    recency_half_life_days: float = field(default_factory=lambda: float(_env("RECENCY_HALF_LIFE_DAYS", "45")))
    #: COOC_SHRINKAGE: pseudo-baskets damping rare antecedents in bundle affinity.
    cooc_shrinkage: float = field(default_factory=lambda: float(_env("COOC_SHRINKAGE", "5")))
    #: COOC_NEIGHBOURS: items kept per item in the bought-together lists.
    cooc_neighbours: int = field(default_factory=lambda: int(_env("COOC_NEIGHBOURS", "100")))
    #: UPSELL_NEIGHBOURS: pricier alternatives kept per item.
    upsell_neighbours: int = field(default_factory=lambda: int(_env("UPSELL_NEIGHBOURS", "10")))
    #: BUNDLE_DISCOUNT: share taken off the sum of unit prices for a bundle offer.
    bundle_discount: float = field(default_factory=lambda: float(_env("BUNDLE_DISCOUNT", "0.10")))
    #: BUNDLE_MIN_LIFT / BUNDLE_MIN_BASKETS: how far above chance, and how often, a bundle must sell.
    bundle_min_lift: float = field(default_factory=lambda: float(_env("BUNDLE_MIN_LIFT", "3.0")))
    bundle_min_baskets: int = field(default_factory=lambda: int(_env("BUNDLE_MIN_BASKETS", "5")))
    #: PROMOTION_TOLERANCE: how much worse than the champion a primary metric may be (absolute).
    promotion_tolerance: float = field(default_factory=lambda: float(_env("PROMOTION_TOLERANCE", "0.002")))
    #: REDIS_URL: where to publish "a new champion" notices (optional).
    redis_url: str | None = field(default_factory=lambda: os.environ.get("REDIS_URL") or None)
    #: MODEL_UPDATES_CHANNEL: the pub/sub channel the service listens on.
    updates_channel: str = field(default_factory=lambda: _env("MODEL_UPDATES_CHANNEL", "crm-recommender:model-updates"))
    #: ERASURES_FILE: clients erased on request (JSON lines with client_id), excluded from training.
    erasures_file: str = field(default_factory=lambda: _env("ERASURES_FILE", "var/service-state/erasures.jsonl"))

    @property
    def workers(self) -> int:
        """Jobs the trainer runs at once (TRAIN_THREADS, 0 = one per core)."""
        return self.threads or os.cpu_count() or 1
