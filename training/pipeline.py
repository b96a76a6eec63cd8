"""Fit the whole model the way `train` does: choose the recipe on an inner time split of the given
training part (`training.tuning`), then fit on all of it with that recipe."""
from __future__ import annotations

from scoring.recommender import Recommender
from training.config import TrainConfig
from training.context import TrainContext
from training.engine import FitEngine
from training.fit import fit_recommender
from training.recipe import Recipe
from training.tuning import tune as tune_recipe


def fit_tuned(ctx: TrainContext, config: TrainConfig | None = None, tune: bool = True,
              fingerprint: dict | None = None, engine: FitEngine | None = None) -> tuple[Recipe, Recommender]:
    """(recipe, model): tuned on the last `config.tune_days` of `ctx` (never on any test), fitted
    on all of it by `engine` (`training.engine`; tuning itself runs in this process). Without
    `tune`, the configured settings."""
    config = config or TrainConfig()
    recipe, report = tune_recipe(ctx, config) if tune else (Recipe.default(config), {})
    return recipe, fit_recommender(ctx, config, recipe, fingerprint=fingerprint, tuning=report,
                                   engine=engine)
