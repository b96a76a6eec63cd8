"""What tuning chooses and fitting follows: the CF settings and the blend weights, as one value.

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

from training.config import TrainConfig
from training.models.cf import CFParams


@dataclass(frozen=True)
class Recipe:
    """cf: the collaborative-filtering settings; weights: blend weights that differ from
    `scoring.recommender.DEFAULT_WEIGHTS` or were chosen on the inner split (the model fills the
    rest with the defaults)."""

    cf: CFParams
    weights: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", MappingProxyType(dict(self.weights)))

    @classmethod
    def default(cls, config: TrainConfig) -> Recipe:
        """The configured settings, untuned: the first factor count and regularisation tried."""
        return cls(CFParams(config.cf_algorithm, config.als_factors[0], config.als_regularization[0],
                            config.als_alpha, config.als_iterations, config.seed, config.threads))

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> Recipe:
        """The recipe a fitted model records in its meta (`params`, `weights`)."""
        p = meta["params"]
        cf = CFParams(p["algorithm"], p["factors"], p["regularization"], p["alpha"], p["iterations"], p["seed"],
                      p["threads"])
        return cls(cf, dict(meta.get("weights", {})))
