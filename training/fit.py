"""Fit every model from a purchase history and assemble the scoring state the service will load.

One function, `fit_recommender`, used by `python -m training train` and by the evaluation
harness alike, so the offline figures are for the very object that gets registered.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from features.baskets import basket_matrix
from features.matrix import IdIndex
from features.merchandise import REASON
from features.merchandise import report as non_merchandise_report
from features.prices import item_unit_prices, tier_rank
from features.products import (
    UNIT_FAMILIES,
    brand_levels,
    group_report,
    parse_package_size,
    product_groups,
    product_type_of,
    size_label,
)
from features.repurchase import coded_intervals
from features.schema import CLIENT, ITEM, ITEM_TEXT, KIND_FEE, KIND_SERVICE, ORDER, QUANTITY, TIMESTAMP
from features.segments import client_segments
from scoring.fallback import RECENT_DAYS
from scoring.recommender import ABC, Recommender
from scoring.state import ModelState
from training.config import TrainConfig
from training.context import TrainContext
from training.crm_state import crm_state
from training.engine import LOCAL, FitEngine
from training.models.bundles import (
    Bundles,
    Neighbours,
    bought_with_services,
    bundle_prices,
    mine_bundles,
    neighbour_lists,
)
from training.models.knn import client_neighbours
from training.models.upsell import trade_up_counts, upsell_table
from training.recipe import Recipe
from training.value import value_state

log = logging.getLogger(__name__)

POPULAR_LIST = 300
SHORT_HALF_LIFE_DAYS = 14.0


class _Stage:
    """Periodic log lines for long work: which stage, and how long the last one took."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.timings: dict[str, float] = {}

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self.t0, 2)
        log.info("fit: %s done in %.1fs", name, now - self.t0)
        self.t0 = now


def catalogue(ctx: TrainContext) -> pd.DataFrame:
    """Every item of the context's index, in its order, with the columns scoring needs."""
    tx, items_df, ids = ctx.transactions, ctx.items_df, pd.Index(ctx.items.ids, name=ITEM)
    base = items_df.drop_duplicates(ITEM).set_index(ITEM).reindex(ids) if items_df is not None else pd.DataFrame(index=ids)
    out = pd.DataFrame(index=ids)
    for col in ITEM_TEXT:
        out[col] = base[col].astype(object).where(base[col].notna(), None) if col in base else None
    out["margin"] = pd.to_numeric(base["margin"], errors="coerce") if "margin" in base else np.nan
    kind = base["kind"] if "kind" in base else pd.Series(None, index=ids, dtype=object)
    out["kind"] = kind.fillna("product").astype(str)
    if REASON in base:
        out[REASON] = base[REASON]
    stock = base["in_stock"] if "in_stock" in base else pd.Series(True, index=ids)
    out["in_stock"] = stock.astype("boolean").fillna(True).astype(bool)
    out["tier"] = tier_rank(base["tier"]) if "tier" in base else np.nan
    out["price"] = item_unit_prices(tx, items_df).reindex(ids)
    out["margin"] = pd.to_numeric(base["margin"], errors="coerce") if "margin" in base else np.nan
    return out.reset_index()


def history_arrays(tx: pd.DataFrame, clients: IdIndex, items: IdIndex, now: pd.Timestamp,
                   half_life: float, codes: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Per client x item: purchase occasions, recency-weighted occasions, last age, median interval.

    `codes` are the lines' client and item indexes when the caller has them (`TrainContext.codes`).
    Why codes: grouping the lines on string ids made this step grow faster than the lines on
    Spark's driver (b 1.13 up to 16x Complete Journey, docs/benchmarks.md); on codes it takes
    1.66 s against 3.05 s on Complete Journey, with the same arrays."""
    line_client, line_item = codes if codes is not None else (clients.index_of(tx[CLIENT]), items.index_of(tx[ITEM]))
    order_code, _ = pd.factorize(tx[ORDER])  # -1 for a missing order, which grouping on it left out
    keep = (tx[QUANTITY] > 0).to_numpy() & (line_client >= 0) & (line_item >= 0) & (order_code >= 0)
    lines = pd.DataFrame({"c": line_client[keep], "i": line_item[keep], "o": order_code[keep],
                          "t": tx[TIMESTAMP].to_numpy()[keep]})
    occ = lines.groupby(["c", "i", "o"], sort=False)["t"].min().reset_index()
    age = ((now - occ["t"]) / pd.Timedelta(days=1)).to_numpy(np.float64)
    occ["w"] = 0.5 ** (np.maximum(age, 0.0) / half_life)
    occ["age"] = age
    occ["w_short"] = 0.5 ** (np.maximum(age, 0.0) / SHORT_HALF_LIFE_DAYS)
    per = occ.groupby(["c", "i"], sort=False).agg(count=("w", "size"), recency=("w", "sum"),
                                                  recent=("w_short", "sum"), age=("age", "min")).reset_index()
    intervals = coded_intervals(lines["c"].to_numpy(), lines["i"].to_numpy(), lines["t"])
    pair = per["c"].to_numpy(np.int64) * len(items) + per["i"].to_numpy(np.int64)
    known = pd.Series(intervals["median_interval_days"].to_numpy(np.float64),
                      index=intervals["client"].to_numpy(np.int64) * len(items) + intervals["item"].to_numpy(np.int64))
    per["interval"] = known.reindex(pair).to_numpy()
    ci, ii = per["c"].to_numpy(np.int64), per["i"].to_numpy(np.int64)
    order = np.lexsort((ii, ci))
    ci, ii, per = ci[order], ii[order], per.iloc[order]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(ci, minlength=len(clients)))]).astype(np.int64)
    return {"hist_indptr": indptr, "hist_indices": ii.astype(np.int32),
            "hist_count": per["count"].to_numpy(np.float32), "hist_recency": per["recency"].to_numpy(np.float32),
            "hist_recent": per["recent"].to_numpy(np.float32),
            "hist_last_age": per["age"].to_numpy(np.float32), "hist_interval": per["interval"].to_numpy(np.float32)}


def repeat_share(hist: dict[str, np.ndarray], n_items: int) -> np.ndarray:
    """Per item: the share of its buyers who bought it on two or more occasions."""
    buyers = np.bincount(hist["hist_indices"], minlength=n_items)
    again = np.bincount(hist["hist_indices"], weights=(hist["hist_count"] >= 2), minlength=n_items)
    return (again / np.maximum(buyers, 1)).astype(np.float32)


def _codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    codes, names = pd.factorize(values.astype(object), sort=True)
    return codes.astype(np.int32), np.asarray(names, dtype=object)


def popular_lists(ctx: TrainContext, abc: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(per ABC class top items, recently popular items, each item's distinct buyers in the last
    RECENT_DAYS) by distinct buyers; ties in item id order.

    Read from the context's client x item matrices (a pair is stored once, with its last purchase's
    recency), not from the lines: counting distinct buyers per item on string ids took 0.97 s on
    Complete Journey and grew with the lines (0.02 s now, the same lists)."""
    bought, n_items = ctx.purchases, len(ctx.items)
    everyone = np.bincount(bought.indices, minlength=n_items)

    def top(counts: np.ndarray) -> np.ndarray:
        ranked = np.argsort(-counts, kind="stable")[:POPULAR_LIST]
        return ranked[counts[ranked] > 0]

    label = abc.reindex(ctx.clients.ids).to_numpy()
    seg = np.full((len(ABC), POPULAR_LIST), -1, dtype=np.int32)
    for k, name in enumerate(ABC):
        members = bought[np.flatnonzero(label == name)]
        idx = top(np.bincount(members.indices, minlength=n_items) if members.nnz else everyone)
        seg[k, : len(idx)] = idx
    recent = np.bincount(ctx.recency.indices[ctx.bought_within(RECENT_DAYS)], minlength=n_items)
    glob = np.full(POPULAR_LIST, -1, dtype=np.int32)
    idx = top(recent if recent.any() else everyone)
    glob[: len(idx)] = idx
    return seg, glob, recent


def fit_recommender(ctx: TrainContext, config: TrainConfig | None = None, recipe: Recipe | None = None, *,
                    fingerprint: dict[str, Any] | None = None, tuning: dict[str, Any] | None = None,
                    light: bool = False, services_only: bool = False,
                    engine: FitEngine | None = None) -> Recommender:
    """Fit CF, bundle affinity, upsell, packages and segments on the context; return the scoring model.

    The model's clients and items are the context's, index for index, so an evaluation reads its
    answers without translating. `recipe` comes from `training.tuning` (chosen on an inner split);
    without it the configured defaults are used. `light` skips bundle mining (for tuning and the
    evaluation refits that read no bundle). `services_only` (implies `light`)
    also skips the item-to-item lists (bought together, client kNN) that only cross-sell,
    replenishment and the cart read: the model then answers `service_package` and nothing else.
    The evaluation's hold-out refits need no more, and the client kNN was a third of their time.
    `engine` computes the CF factors and the basket pair counts (`training.engine`: in this
    process by default, `training.spark.engine.SparkEngine` on Spark); the rest runs here.
    """
    light = light or services_only
    config = config or TrainConfig()
    recipe = recipe or Recipe.default(config)
    engine = engine or LOCAL
    stage = _Stage()
    tx, items, clients, now = ctx.transactions, ctx.items, ctx.clients, ctx.now
    cat = catalogue(ctx)
    stage("catalogue")

    client_factors, item_factors = engine.cf(ctx, recipe.cf)
    stage("cf")

    merch = (cat["kind"] != KIND_FEE).to_numpy()
    # fees and coupons are in every other basket: counted, they would be everyone's neighbour
    baskets, _ = basket_matrix(tx, items, codes=np.where(merch[np.maximum(ctx.line_item, 0)], ctx.line_item, -1))
    co = engine.pair_counts(baskets)
    groups = product_groups(cat)
    neighbours = (Neighbours.empty(len(items)) if services_only else
                  neighbour_lists(co, config.cooc_neighbours, config.cooc_shrinkage))
    svc_idx, svc_score = bought_with_services(co, (cat["kind"] == KIND_SERVICE).to_numpy(), 20, config.cooc_shrinkage)
    mined = (Bundles.empty() if light else
             mine_bundles(baskets, co, config.bundle_min_baskets, config.bundle_min_lift, groups=groups,
                          offerable=merch & (cat["kind"] != KIND_SERVICE).to_numpy() & cat["in_stock"].to_numpy(bool),
                          prior=config.bundle_lift_prior))
    if services_only:
        knn_idx, knn_score = np.full((len(items), 1), -1, np.int32), np.zeros((len(items), 1), np.float32)
    else:
        knn_idx, knn_score = client_neighbours(tx, clients, items, config.cooc_neighbours // 2, config.threads,
                                               codes=ctx.codes)
    stage("bundle affinity")

    subcat, subcat_names = _codes(cat["subcategory"])
    category, _ = _codes(cat["category"])
    subcat[cat["subcategory"].isna().to_numpy()] = -1
    category[cat["category"].isna().to_numpy()] = -1
    price = cat["price"].to_numpy(np.float64)
    # the catalogue's own tiers only: price bands are no tier a client would recognise
    tier = cat["tier"].to_numpy(np.float64)
    norms = np.linalg.norm(item_factors, axis=1, keepdims=True)
    unit = np.divide(item_factors, norms, out=np.zeros_like(item_factors), where=norms > 0)
    hist = history_arrays(tx, clients, items, now, config.recency_half_life_days, codes=ctx.codes)
    # distinct buyers (not the BM25 matrix, which drops items nearly everyone buys)
    popularity = np.bincount(hist["hist_indices"], minlength=len(items)).astype(np.float32)
    up_idx = np.full((len(items), 1), -1, np.int32)
    up_score, up_moves = np.zeros((len(items), 1), np.float32), np.zeros((len(items), 1), np.int32)

    segments = client_segments(tx, now=now, lapsing_days=config.lapsing_days,
                               inactive_days=config.inactive_days).reindex(clients.ids)
    abc = segments["abc"].fillna("C")
    seg_pop, glob_pop, recent_pop = popular_lists(ctx, abc)
    stage("segments and history")

    full, bprice = bundle_prices(mined.items, price.astype(np.float32), config.bundle_discount)
    names = cat["name"].fillna(cat[ITEM]).astype(str).to_numpy()
    bundle_table = pd.DataFrame({
        "bundle_id": [f"bundle-{i + 1}" for i in range(len(mined.items))],
        "name": [" + ".join(names[j] for j in row if j >= 0) for row in mined.items],
    })
    pk_items, pk_tier, pk_price, pk_table = _packages(ctx.packages, items)
    facts = item_facts(cat, baskets, groups)
    state = ModelState(
        items=cat[[ITEM, *ITEM_TEXT, "kind"]].astype(object).assign(
            item_id=lambda d: d[ITEM].astype(str), size_label=cat["package_size"].map(size_label)),
        clients=pd.DataFrame({CLIENT: clients.ids.astype(str), "abc": abc.to_numpy(dtype=object),
                              "activity": segments["activity"].fillna("inactive").to_numpy(dtype=object),
                              "rfm": segments["rfm"].astype(object).to_numpy()}),
        bundles=bundle_table, packages=pk_table,
        meta={"trained_at": pd.Timestamp.now(tz="UTC").isoformat(), "reference_time": now.isoformat(),
              "data": fingerprint or {}, "params": {**asdict(recipe.cf), "bundle_discount": config.bundle_discount,
                                                  "cooc_shrinkage": config.cooc_shrinkage,
                                                  "recency_half_life_days": config.recency_half_life_days},
              "weights": dict(recipe.weights), "tuning": tuning or {}, "subcategories": len(subcat_names),
              "n_baskets": int(baskets.shape[0]), "engine": engine.name, "currency": config.currency, "product_groups": group_report(cat, facts["item_group"]),
              "non_merchandise": merchandise_report(cat)},
        item_price=price.astype(np.float32), item_tier=tier.astype(np.float32), item_subcat=subcat,
        item_category=category, item_service=(cat["kind"] == KIND_SERVICE).to_numpy(),
        item_in_stock=cat["in_stock"].to_numpy(bool), item_pop=popularity,
        item_recent_pop=recent_pop.astype(np.float32), item_factors=item_factors,
        cooc_idx=neighbours.idx, cooc_score=neighbours.score, cooc_conf=neighbours.conf,
        knn_idx=knn_idx, knn_score=knn_score,
        service_idx=svc_idx, service_score=svc_score.astype(np.float32),
        item_repeat=repeat_share(hist, len(items)),
        upsell_idx=up_idx, upsell_score=up_score, upsell_moves=up_moves,
        client_factors=client_factors, **hist,
        client_abc=abc.map({k: i for i, k in enumerate(ABC)}).to_numpy(np.int8),
        segment_popular=seg_pop, global_popular=glob_pop,
        yty=(item_factors.T @ item_factors).astype(np.float32),
        bundle_items=mined.items, bundle_lift=mined.lift, bundle_support=mined.support,
        bundle_price=bprice, bundle_full_price=full,
        package_items=pk_items, package_tier=pk_tier, package_price=pk_price, **facts,
        extras={name: np.array(array) for name, array in recipe.trees.items()},  # learnt trees, as tuned
    )
    if not services_only:  # the upsell kind answers from this table alone: tuning needs it too (12 s on the full data)
        offerable = state.item_merch & ~state.item_service & state.item_in_stock
        moves = trade_up_counts(tx, items, state.item_type, price)
        state.upsell_idx, state.upsell_score, state.upsell_moves, state.upsell_step = upsell_table(
            state, offerable, unit, moves, config.upsell_neighbours)
    stage("upsell")
    if not light:  # the client value model (BG/NBD, Gamma-Gamma): what `client_value` answers with
        value_arrays, state.meta["value_model"] = value_state(tx, clients.ids, now, config)
        state.extras.update(value_arrays)
        crm_arrays, state.meta["crm"] = crm_state(tx, ctx.items_df, clients.ids, now, config)
        state.extras.update(crm_arrays)
        stage("value model and transitions")
    state.meta["fit_seconds"] = stage.timings
    return Recommender(state)


def item_facts(cat: pd.DataFrame, baskets: Any, groups: np.ndarray) -> dict[str, np.ndarray]:
    """The `ModelState` arrays the presentability rules read (see `features.products`)."""
    sizes = cat["package_size"].map(parse_package_size)
    family = {name: code for code, name in enumerate(UNIT_FAMILIES)}
    ptype, _ = _codes(product_type_of(cat).fillna("\x00"))
    ptype[product_type_of(cat).isna().to_numpy()] = -1
    return {"item_group": groups,
            "item_type": ptype,
            "item_size": sizes.map(lambda s: np.nan if s is None else s[0]).to_numpy(np.float32),
            "item_size_unit": sizes.map(lambda s: 0 if s is None else family[s[1]]).to_numpy(np.int8),
            "item_brand_level": brand_levels(cat).to_numpy(np.float32),
            "item_merch": (cat["kind"] != KIND_FEE).to_numpy(),
            "item_margin": cat["margin"].to_numpy(np.float32),
            "item_baskets": (np.asarray((baskets > 0).sum(axis=0), dtype=np.float32).ravel() if baskets is not None
                             else np.zeros(len(cat), np.float32))}


def merchandise_report(cat: pd.DataFrame) -> dict[str, Any]:
    """How many items are not merchandise, why, and examples (the trainer's output and the
    model's metadata, so a person can check that no staple is on the list)."""
    fees = cat[cat["kind"] == KIND_FEE]
    why = fees[REASON] if REASON in fees else pd.Series("kind=fee in the items file", index=fees.index)
    flagged = pd.DataFrame({ITEM: fees[ITEM].astype(str), "reason": why.fillna("kind=fee in the items file")})
    return non_merchandise_report(flagged, cat)


def _packages(packages: pd.DataFrame | None, items: IdIndex) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    if packages is None or packages.empty:
        return (np.empty((0, 1), np.int32), np.empty(0, np.float32), np.empty(0, np.float32),
                pd.DataFrame({"package_id": pd.Series(dtype=str), "name": pd.Series(dtype=str)}))
    members = [items.index_of(list(ids)) for ids in packages["items"]]
    width = max(len(m) for m in members)
    arr = np.full((len(members), width), -1, dtype=np.int32)
    for r, m in enumerate(members):
        m = m[m >= 0]
        arr[r, : len(m)] = m
    tier = tier_rank(packages["tier"]).to_numpy(np.float32) if "tier" in packages else np.full(len(packages), np.nan, np.float32)
    price = pd.to_numeric(packages["price"], errors="coerce").to_numpy(np.float32) if "price" in packages else np.full(len(packages), np.nan, np.float32)
    table = pd.DataFrame({"package_id": packages["package_id"].astype(str), "name": packages["name"].astype(str)})
    return arr, tier, price, table
