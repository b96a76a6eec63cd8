"""What a saved model's arrays cost per item, per client and per history entry (docs/scaling.md).

Reads the `.npy` files of a model folder (`ModelState.save`'s layout: `<folder>/arrays/*.npy`)
without loading them, and sorts each array to the side whose count its first dimension is:
the item side (one row per item: shared by every worker through the page cache), the client
side (one row per client: candidate lists, factors, segments, value), the purchase history (one
entry per client and distinct item bought: `hist_*`) and the rest (bundles, packages, transitions).

    python tests/bench/model_footprint.py <model folder>            # .../artifacts/recommender
    python tests/bench/model_footprint.py --tracking-uri URI --model-name NAME [--alias champion]
    python tests/bench/model_footprint.py <model folder> --load     # also what loading it costs a process

`--load` measures this process as a service worker would be: the worker's imports first (its
baseline RSS), then `Recommender.load` and a few hundred answers. The growth of anonymous memory
(`/proc/self/smaps_rollup`) is what each worker builds privately at load (tables, id maps); the
mapped arrays are file-backed and shared between workers by the page cache.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

SIDES = ("item", "client", "history", "other")


def footprint(folder: Path) -> dict[str, Any]:
    """Bytes by side, and per unit (item, client, history entry), of the model saved in `folder`."""
    arrays = {path.stem: np.load(path, mmap_mode="r", allow_pickle=False) for path in sorted((folder / "arrays").glob("*.npy"))}
    n_items, n_clients = len(arrays["item_price"]), len(arrays["client_abc"])
    entries = len(arrays["hist_indices"])
    sides = dict.fromkeys(SIDES, 0)
    for name, array in arrays.items():
        first = array.shape[0] if array.shape else -1
        side = ("history" if name.startswith("hist_") and name != "hist_indptr" else
                "item" if first == n_items else "client" if first in (n_clients, n_clients + 1) else "other")
        sides[side] += int(array.nbytes)
    tables = {path.stem: path.stat().st_size for path in folder.glob("*.parquet")}
    return {"items": n_items, "clients": n_clients, "history_entries": entries,
            "bytes": sides, "tables_bytes": tables,
            "per_item": round(sides["item"] / max(n_items, 1), 1),
            "per_client": round(sides["client"] / max(n_clients, 1), 1),
            "per_history_entry": round(sides["history"] / max(entries, 1), 1),
            "history_entries_per_client": round(entries / max(n_clients, 1), 1)}


def _rollup() -> dict[str, int]:
    out = {}
    with open("/proc/self/smaps_rollup") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) >= 3 and parts[-1] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return out


def load_cost(folder: Path, clients: int = 200) -> dict[str, Any]:
    """A worker's baseline RSS, and the private (anonymous) and file-backed memory that loading the
    model in `folder` and answering `clients` clients three kinds each adds to it."""
    import gc

    import flask  # noqa: F401 - the imports a worker has before it loads a model
    import mlflow  # noqa: F401
    import pandas  # noqa: F401

    from scoring.recommender import Recommender

    gc.collect()
    before = _rollup()
    rec = Recommender.load(folder)
    for client in rec.client_ids[:clients]:
        for kind in ("cross_sell", "upsell", "replenishment"):
            rec.suggest(str(client), kind, 10)
    gc.collect()
    after = _rollup()
    anonymous = after["Anonymous"] - before["Anonymous"]
    return {"baseline_rss_mb": round(before["Rss"] / 2**20, 1), "rss_after_mb": round(after["Rss"] / 2**20, 1),
            "private_added_mb": round(anonymous / 2**20, 1),
            "file_backed_added_mb": round((after["Rss"] - before["Rss"] - anonymous) / 2**20, 1),
            "private_bytes_per_item": round(anonymous / max(rec.n_items, 1))}


def _registered_folder(tracking_uri: str, model_name: str, alias: str, into: Path) -> Path:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{model_name}@{alias}", dst_path=str(into)))
    return next(p.parent for p in local.rglob("arrays") if p.is_dir())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, help="a saved model folder (holding arrays/)")
    parser.add_argument("--tracking-uri")
    parser.add_argument("--model-name", default="crm-recommender")
    parser.add_argument("--alias", default="champion")
    parser.add_argument("--download-to", type=Path, default=Path("var/footprint"))
    parser.add_argument("--load", action="store_true", help="also measure what loading the model costs a worker")
    args = parser.parse_args(argv)
    if args.folder is None:
        if not args.tracking_uri:
            parser.error("give a model folder or --tracking-uri")
        args.folder = _registered_folder(args.tracking_uri, args.model_name, args.alias, args.download_to)
    result = footprint(args.folder)
    if args.load:
        result["load"] = load_cost(args.folder)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
