"""Fit learnt scores (`scoring.learnt`): a logistic regression of "bought in the next
days" over a ranking's features, on the inner time split only."""
from __future__ import annotations

import numpy as np

#: Ridge penalty on the standardised coefficients (the intercept is free).
L2 = 1.0
NEWTON_STEPS = 15


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, steps: int = NEWTON_STEPS) -> tuple[float, np.ndarray]:
    """(intercept, coefficients) on the raw features.

    Newton steps on standardised features, a dozen columns: exact and a second or two on a
    million pairs, with no dependency beyond numpy."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    z = np.column_stack([np.ones(len(x)), (x - mean) / scale])
    w = np.zeros(z.shape[1])
    ridge = l2 * np.eye(z.shape[1])
    ridge[0, 0] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -30, 30)))
        grad = z.T @ (p - y) + ridge @ w
        hess = (z * (p * (1.0 - p))[:, None]).T @ z + ridge
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:  # all probabilities saturated (tiny data): the least-squares step
            step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    coef = w[1:] / scale
    return float(w[0] - coef @ mean), coef


def as_weights(prefix: str, features: tuple[str, ...], intercept: float, coef: np.ndarray) -> dict[str, float]:
    """The fit as blend weights: flat floats that travel in the model's meta and MLflow params."""
    return {prefix + "intercept": intercept, **{prefix + name: float(c) for name, c in zip(features, coef, strict=True)}}
