"""Gradient-boosted trees evaluated with numpy: the learnt rankers' trees travel as flat arrays in
the model (`ModelState.extras`), so the service scores them without LightGBM.

Why not LightGBM at request time: `scoring` ships inside the model and its only dependency is
numpy. The trees are fitted in training (`training.models.gbdt`) and flattened here
(`flatten`); `predict` follows LightGBM's numerical decision rule exactly, so it reproduces
`Booster.predict` (raw scores) on the same inputs.

Layout (every tree in one set of arrays): node `n` tests `x[:, feature[n]] <= threshold[n]` and
goes to `left[n]` or `right[n]`; a child `c < 0` is leaf `~c` of `leaf_value`. `root[t]` is
tree t's first node (or `~leaf` for a tree of one leaf). `missing[n]`: 0 none (NaN reads as 0),
1 zero (0 and NaN take `default_left[n]`), 2 NaN (NaN takes `default_left[n]`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: LightGBM's kZeroThreshold: |x| at most this is "zero" for a split whose missing type is zero.
ZERO = 1e-35
MISSING = {"None": 0, "Zero": 1, "NaN": 2}
#: The array names (under a prefix) that make one ensemble.
PARTS = ("feature", "threshold", "left", "right", "default_left", "missing", "root", "leaf_value")


def flatten(dump: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of `Booster.dump_model()` (numerical splits only; one tree per iteration)."""
    if dump.get("num_tree_per_iteration", 1) != 1:
        raise ValueError("one tree per iteration only (ranking or binary objectives)")
    nodes: dict[str, list] = {name: [] for name in ("feature", "threshold", "left", "right", "default_left", "missing")}
    leaves: list[float] = []
    roots: list[int] = []

    def visit(node: Mapping[str, Any]) -> int:
        if "leaf_value" in node:
            leaves.append(float(node["leaf_value"]))
            return ~(len(leaves) - 1)
        if node["decision_type"] != "<=":
            raise ValueError(f"only numerical splits are evaluated, not {node['decision_type']!r}")
        at = len(nodes["feature"])
        nodes["feature"].append(int(node["split_feature"]))
        nodes["threshold"].append(float(node["threshold"]))
        nodes["default_left"].append(bool(node["default_left"]))
        nodes["missing"].append(MISSING[node["missing_type"]])
        nodes["left"].append(0)
        nodes["right"].append(0)
        nodes["left"][at] = visit(node["left_child"])
        nodes["right"][at] = visit(node["right_child"])
        return at

    for tree in dump["tree_info"]:
        roots.append(visit(tree["tree_structure"]))
    return {"feature": np.array(nodes["feature"], dtype=np.int32),
            "threshold": np.array(nodes["threshold"], dtype=np.float64),
            "left": np.array(nodes["left"], dtype=np.int32), "right": np.array(nodes["right"], dtype=np.int32),
            "default_left": np.array(nodes["default_left"], dtype=bool),
            "missing": np.array(nodes["missing"], dtype=np.int8),
            "root": np.array(roots, dtype=np.int32), "leaf_value": np.array(leaves, dtype=np.float64)}


def predict(trees: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Raw scores (the sum of the trees' leaves, in tree order) of each row of `x`.

    All (row, tree) pairs walk down together, one level per step: a few dozen numpy operations
    for a hundred candidates and a few hundred shallow trees."""
    x = np.asarray(x, dtype=np.float64)
    n, n_trees = x.shape[0], trees["root"].size
    if n_trees == 0 or n == 0:
        return np.zeros(n)
    rows = np.repeat(np.arange(n), n_trees)
    at = np.tile(trees["root"].astype(np.int64), n)
    live = np.flatnonzero(at >= 0)
    while live.size:
        node = at[live]
        value = x[rows[live], trees["feature"][node]]
        missing = trees["missing"][node]
        nan = np.isnan(value)
        value = np.where(nan & (missing != 2), 0.0, value)
        default = ((missing == 1) & (np.abs(value) <= ZERO)) | ((missing == 2) & nan)
        go_left = np.where(default, trees["default_left"][node], value <= trees["threshold"][node])
        at[live] = np.where(go_left, trees["left"][node], trees["right"][node])
        live = live[at[live] >= 0]
    leaf = trees["leaf_value"][~at].reshape(n, n_trees)
    out = np.zeros(n)
    for t in range(n_trees):  # in tree order, as LightGBM adds them
        out += leaf[:, t]
    return out


def stored(extras: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray] | None:
    """The ensemble saved under `prefix` in a model's extras, or None when none was learnt."""
    if prefix + "root" not in extras:
        return None
    return {name: extras[prefix + name] for name in PARTS}
