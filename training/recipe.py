"""What tuning chooses and fitting follows: the CF settings, the blend weights and any learnt
trees, as one value.

Tuning (`training.tuning`) returns a `Recipe`; `training.fit.fit_recommender` takes one. A recipe
is frozen, so the model fitted for the test, its hold-out refits and the final model on all the
data are built from one and the same choice, and nothing changes a fitted model's weights behind
its back.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from training.config import TrainConfig
from training.models.cf import CFParams


@dataclass(frozen=True)
class Recipe:
    """cf: the collaborative-filtering settings; weights: blend weights that differ from
    `scoring.recommender.DEFAULT_WEIGHTS` or were chosen on the inner split (the model fills the
    rest with the defaults); trees: learnt tree ensembles as the model's extras arrays
    (`scoring.learnt.CROSS_SELL_TREES` + part -> array), copied into every model fitted from it."""

    cf: CFParams
    weights: Mapping[str, float] = field(default_factory=dict)
    trees: Mapping[str, np.ndarray] = field(default_factory=dict)

    #: extras whose name starts so are learnt trees (part of the recipe, not of one fit)
    TREES = "trees_"

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", MappingProxyType(dict(self.weights)))
        if any(not name.startswith(self.TREES) for name in self.trees):
            raise ValueError(f"tree arrays are named {self.TREES}<ranker>.<part>")
        object.__setattr__(self, "trees", MappingProxyType(dict(self.trees)))

    @classmethod
    def default(cls, config: TrainConfig) -> Recipe:
        """The configured settings, untuned: the first factor count and regularisation tried."""
        return cls(CFParams(config.cf_algorithm, config.als_factors[0], config.als_regularization[0],
                            config.als_alpha, config.als_iterations, config.seed, config.threads))

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any], extras: Mapping[str, np.ndarray] | None = None) -> Recipe:
        """The recipe a fitted model records in its meta (`params`, `weights`) and, for learnt
        trees, its extras arrays."""
        p = meta["params"]
        cf = CFParams(p["algorithm"], p["factors"], p["regularization"], p["alpha"], p["iterations"], p["seed"],
                      p["threads"])
        trees = {k: np.asarray(v) for k, v in (extras or {}).items() if k.startswith(cls.TREES)}
        return cls(cf, dict(meta.get("weights", {})), trees)
