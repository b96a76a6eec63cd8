"""The fitted model as plain arrays and tables: what is saved into the MLflow artifact.

Numbers live in one uncompressed `.npy` file per array (loaded with `allow_pickle=False`),
strings in Parquet tables, the rest in `meta.json`. Nothing is pickled, so a model file can be
inspected, diffed and loaded by any later version of the scoring code that knows `MODEL_FORMAT`.

Why one `.npy` per array: the service maps them (`mmap_mode="c"`) instead of reading them, so the
gunicorn workers that load the same version share one copy of the pages through the page cache
(copy-on-write: a process that writes to an array gets a private page, the file never changes).
Format 1 (one `.npz`, read into each process) is no longer read: nothing writes it any more.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MODEL_FORMAT = 2
READABLE_FORMATS = (2,)


@dataclass
class ModelState:
    """Arrays indexed by item (rows of `items`) and client (rows of `clients`).

    items    item_id, name, category, subcategory, kind, (item tables keep catalogue strings)
    clients  client_id, abc, activity, rfm
    bundles  bundle_id, name (mined or from the packages file)
    packages package_id, name (the business's packages, if any)
    """

    items: pd.DataFrame
    clients: pd.DataFrame
    bundles: pd.DataFrame
    packages: pd.DataFrame
    meta: dict[str, Any]
    # item arrays
    item_price: np.ndarray          # float32, NaN unknown
    item_tier: np.ndarray           # float32, NaN unknown
    item_subcat: np.ndarray         # int32 code, -1 unknown
    item_category: np.ndarray       # int32 code, -1 unknown
    item_service: np.ndarray        # bool
    item_in_stock: np.ndarray       # bool
    item_pop: np.ndarray            # float32 distinct buyers in training
    item_recent_pop: np.ndarray     # float32 distinct buyers in the last 30 days
    item_factors: np.ndarray        # float32 n_items x f
    cooc_idx: np.ndarray            # int32 n_items x M, -1 padded: items bought with this one
    cooc_score: np.ndarray          # float32 shrunk confidence
    cooc_conf: np.ndarray           # float32 plain confidence (for reasons)
    knn_idx: np.ndarray             # int32 n_items x K: items bought by the same clients (cosine)
    knn_score: np.ndarray           # float32 cosine similarity
    service_idx: np.ndarray         # int32 n_items x S: services bought with this item
    service_score: np.ndarray       # float32 shrunk confidence towards each service
    item_repeat: np.ndarray         # float32 share of the item's buyers who bought it again
    upsell_idx: np.ndarray          # int32 n_items x U: pricier alternatives
    upsell_score: np.ndarray        # float32
    upsell_moves: np.ndarray        # int32 clients who traded up along this edge
    # client arrays
    client_factors: np.ndarray      # float32 n_clients x f
    hist_indptr: np.ndarray         # CSR of the client's purchase history
    hist_indices: np.ndarray
    hist_count: np.ndarray          # float32 purchase occasions
    hist_recency: np.ndarray        # float32 sum of recency-decayed occasions
    hist_recent: np.ndarray         # float32 the same with a short half-life (the last weeks)
    hist_last_age: np.ndarray       # float32 days between the last purchase and the reference time
    hist_interval: np.ndarray       # float32 median days between purchases, NaN with one purchase
    client_abc: np.ndarray          # int8 0=A 1=B 2=C
    segment_popular: np.ndarray     # int32 3 x P: most bought items per ABC class
    global_popular: np.ndarray      # int32 P: most bought recently
    yty: np.ndarray                 # float32 f x f, Gram matrix of item factors
    # bundles and packages
    bundle_items: np.ndarray        # int32 n_bundles x 3, -1 padded
    bundle_lift: np.ndarray         # float32
    bundle_support: np.ndarray      # float32
    bundle_price: np.ndarray        # float32 suggested price (sum less discount)
    bundle_full_price: np.ndarray   # float32
    package_items: np.ndarray       # int32 n_packages x L, -1 padded
    package_tier: np.ndarray        # float32, NaN unknown
    package_price: np.ndarray       # float32, NaN unknown
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    # item facts the presentability rules read (models saved before them get the defaults that
    # change nothing: every item its own product type's merchandise, groups by name)
    item_group: np.ndarray | None = None        # int32 product group (same thing to a client)
    item_type: np.ndarray | None = None         # int32 product type code (upsell stays within), -1 unknown
    item_size: np.ndarray | None = None         # float32 pack size in base units (g or ml, pieces), NaN unknown
    item_size_unit: np.ndarray | None = None    # int8 0 unknown, 1 amount (g/ml), 2 count
    item_brand_level: np.ndarray | None = None  # float32 0 private label, 1 national brand, NaN unknown
    item_merch: np.ndarray | None = None        # bool merchandise (not a fee, coupon, fuel...)
    item_margin: np.ndarray | None = None       # float32 margin per unit, NaN unknown
    item_baskets: np.ndarray | None = None      # float32 training baskets holding the item
    upsell_step: np.ndarray | None = None       # int8 n_items x U: scoring.upgrades step of each upsell

    def __post_init__(self) -> None:
        n = len(self.item_price)
        if self.item_group is None:
            names = self.items["name"].astype(str) if "name" in self.items else pd.Series(range(n)).astype(str)
            self.item_group = pd.factorize(names.str.lower())[0].astype(np.int32)
        defaults = {"item_type": lambda: np.asarray(self.item_subcat, np.int32),
                    "item_size": lambda: np.full(n, np.nan, np.float32),
                    "item_size_unit": lambda: np.zeros(n, np.int8),
                    "item_brand_level": lambda: np.full(n, np.nan, np.float32),
                    "item_merch": lambda: np.ones(n, bool),
                    "item_margin": lambda: np.full(n, np.nan, np.float32),
                    "item_baskets": lambda: np.asarray(self.item_pop, np.float32),
                    "upsell_step": lambda: np.zeros(self.upsell_idx.shape, np.int8)}
        for name, make in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, make())

    TABLES = ("items", "clients", "bundles", "packages")

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {f.name: getattr(self, f.name) for f in fields(self)
                  if f.name not in (*self.TABLES, "meta", "extras")}
        arrays.update({f"extra__{k}": v for k, v in self.extras.items()})
        (folder / "arrays").mkdir(exist_ok=True)
        for name, array in arrays.items():
            np.save(folder / "arrays" / f"{name}.npy", np.asarray(array), allow_pickle=False)
        for name in self.TABLES:
            getattr(self, name).to_parquet(folder / f"{name}.parquet", index=False)
        (folder / "meta.json").write_text(json.dumps({**self.meta, "model_format": MODEL_FORMAT}, indent=2, default=str))

    @classmethod
    def load(cls, folder: str | Path) -> ModelState:
        """The arrays are mapped copy-on-write, not read (see the module docstring)."""
        folder = Path(folder)
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("model_format") not in READABLE_FORMATS:
            raise ValueError(f"the model's arrays are in state format {meta.get('model_format')!r}, which this code "
                             f"does not read (it reads {', '.join(map(str, READABLE_FORMATS))}): retrain the model")
        arrays = {path.stem: np.load(path, mmap_mode="c", allow_pickle=False).view(np.ndarray)
                  for path in sorted((folder / "arrays").glob("*.npy"))}
        extras = {k.removeprefix("extra__"): arrays.pop(k) for k in list(arrays) if k.startswith("extra__")}
        tables = {name: pd.read_parquet(folder / f"{name}.parquet") for name in cls.TABLES}
        return cls(**tables, meta=meta, extras=extras, **arrays)
