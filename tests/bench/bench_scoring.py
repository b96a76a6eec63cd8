"""Scoring cost inside one process, without HTTP: what a request pays in the model itself.

For the registered model (or a saved model folder) it measures, on real clients:
- per kind, milliseconds per answer from the precomputed candidate lists and by the exact path
  (scoring every item), and the recall@10 the lists keep against the exact answers, with and
  without exclusions (`training.candidates.candidate_recall`);
- the cart widget with 1, 5 and 20 items, over the items with evidence and densely;
- for the design at 1M items: exact top-k by a full matrix-vector product against an HNSW index
  (faiss, inner product turned into L2 by one extra coordinate) on the model's own item factors,
  with the recall of the index's top-T against the exact top-10, and the product's cost at 1M
  items (a random 1M x f matrix: the cost of a product does not depend on its values).

    python tests/bench/bench_scoring.py --model-dir var/model/artifacts/recommender
    python tests/bench/bench_scoring.py --tracking-uri sqlite:///$PWD/var/mlflow.db --model-name crm-recommender
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scoring.recommender import Recommender  # noqa: E402
from training.candidates import candidate_recall  # noqa: E402

CLIENTS = 300
CART_SIZES = (1, 5, 20)


def model_dir_from_registry(uri: str, name: str, work: Path) -> Path:
    import mlflow

    mlflow.set_tracking_uri(uri)
    local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}@champion", dst_path=str(work))
    return Path(local) / "artifacts" / "recommender"


def _per_call_ms(fn: Any, args: list[Any]) -> float:
    """Per call, after one untimed pass (the model's pages are mapped on first touch)."""
    for a in args:
        fn(*a)
    started = time.perf_counter()
    for a in args:
        fn(*a)
    return (time.perf_counter() - started) / len(args) * 1000


def kinds_table(rec: Recommender, clients: list[str]) -> list[dict[str, Any]]:
    exact = rec.without_candidates()
    rows = []
    for kind in ("cross_sell", "upsell", "service_package", "replenishment", "next_basket"):
        args = [(c, kind, 10) for c in clients]
        rows.append({"kind": kind, "candidates_ms": round(_per_call_ms(rec.suggest, args), 3),
                     "exact_ms": round(_per_call_ms(exact.suggest, args), 3)})
    return rows


def cart_table(rec: Recommender, clients: list[str], rng: np.random.Generator) -> list[dict[str, Any]]:
    pool = rec.item_ids[np.argsort(-rec.state.item_pop)[:200]]
    class Dense(Recommender):
        def _cart_sparse(self, *args: Any) -> None:
            return None  # always the dense path

    dense = Dense(rec.state)
    rows = []
    for size in CART_SIZES:
        carts = [([str(i) for i in rng.choice(pool, size, replace=False)], c) for c in clients]
        same = sum(rec.cart(items, c, 10) == dense.cart(items, c, 10) for items, c in carts[:100])
        rows.append({"items": size, "sparse_ms": round(_per_call_ms(lambda i, c: rec.cart(i, c, 10), carts), 3),
                     "dense_ms": round(_per_call_ms(lambda i, c: dense.cart(i, c, 10), carts), 3),
                     "identical_of_100": int(same)})
    return rows


def ann_figures(rec: Recommender, clients: list[str], rng: np.random.Generator) -> dict[str, Any]:
    try:
        import faiss
    except ImportError:
        return {"skipped": "faiss-cpu is not installed (pip install -e '.[dev]')"}
    faiss.omp_set_num_threads(1)
    y = np.ascontiguousarray(rec.state.item_factors, dtype=np.float32)
    n, f = y.shape
    norms = np.linalg.norm(y, axis=1)
    # |x' - y'|^2 = |x|^2 + M^2 - 2 x.y for y' = [y, sqrt(M^2 - |y|^2)], x' = [x, 0]: L2 order = inner-product order
    augmented = np.hstack([y, np.sqrt(np.maximum(norms.max() ** 2 - norms ** 2, 0.0))[:, None]]).astype(np.float32)
    started = time.perf_counter()
    index = faiss.IndexHNSWFlat(f + 1, 32)
    index.hnsw.efConstruction = 200
    index.add(augmented)
    build = time.perf_counter() - started
    vectors = [rec.state.client_factors[rec._client_pos[c]] for c in clients]
    out: dict[str, Any] = {"items": n, "factors": f, "build_s": round(build, 1),
                           "index_mb": round(faiss.serialize_index(index).nbytes / 1e6, 1), "depths": []}
    for depth in (100, 200, 500):
        index.hnsw.efSearch = max(depth, 64)
        hits, spent = 0, 0.0
        for x in vectors:
            want = set(np.argsort(-(y @ x))[:10].tolist())
            query = np.append(x, 0.0).astype(np.float32)[None]
            t = time.perf_counter()
            _, found = index.search(query, depth)
            spent += time.perf_counter() - t
            hits += len(want & set(found[0].tolist()))
        out["depths"].append({"top": depth, "recall_at_10": round(hits / (10 * len(vectors)), 4),
                              "ms": round(spent / len(vectors) * 1000, 3)})
    out["exact_product_ms"] = round(_per_call_ms(lambda x: y @ x, [(x,) for x in vectors]), 3)
    big = rng.standard_normal((1_000_000, f), dtype=np.float32)
    out["exact_product_1m_items_ms"] = round(_per_call_ms(lambda x: big @ x, [(x,) for x in vectors[:50]]), 2)
    return out


def run(model_dir: Path, clients: int = CLIENTS, seed: int = 0) -> dict[str, Any]:
    threadpool_limits(1, "blas")  # as the service runs
    rec = Recommender.load(model_dir)
    if not rec.meta.get("candidates"):
        raise SystemExit(f"{model_dir}: this model has no candidate lists (trained before they existed)")
    rng = np.random.default_rng(seed)
    sample = [str(c) for c in rec.client_ids[rng.choice(len(rec.client_ids), min(clients, len(rec.client_ids)),
                                                            replace=False)]]
    print(f"scoring: {rec.n_items} items, {len(rec.client_ids)} clients, {len(sample)} sampled", flush=True)
    result = {"kinds": kinds_table(rec, sample), "cart": cart_table(rec, sample, rng),
              "recall": candidate_recall(rec, k=10, clients=len(sample), exclude=3, seed=seed),
              "ann": ann_figures(rec, sample, rng)}
    print(format_table(result), flush=True)
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = ["kind               candidates ms   exact ms   speed-up   recall@10 (with exclusions)  exact path taken"]
    for row in result["kinds"]:
        recall = result["recall"].get(row["kind"])
        lines.append(f"{row['kind']:<18} {row['candidates_ms']:>13.3f} {row['exact_ms']:>10.3f} "
                     f"{row['exact_ms'] / max(row['candidates_ms'], 1e-9):>9.1f}x   "
                     + (f"{recall['recall']:>9.4f}{'':>20}{recall['exact_share']:>8.1%}" if recall else "   (not precomputed)"))
    for row in result["cart"]:
        lines.append(f"cart {row['items']:>2} items      {row['sparse_ms']:>13.3f} {row['dense_ms']:>10.3f} "
                     f"{row['dense_ms'] / max(row['sparse_ms'], 1e-9):>9.1f}x   identical answers {row['identical_of_100']}/100")
    ann = result["ann"]
    if "skipped" in ann:
        lines.append(f"ann: {ann['skipped']}")
    else:
        lines.append(f"HNSW over {ann['items']} item factors (f={ann['factors']}): built in {ann['build_s']} s, "
                     f"{ann['index_mb']} MB; exact product {ann['exact_product_ms']} ms, "
                     f"at 1M items {ann['exact_product_1m_items_ms']} ms")
        for d in ann["depths"]:
            lines.append(f"  index top-{d['top']:<4} recall of the exact top-10 {d['recall_at_10']:.4f}, {d['ms']:.3f} ms/query")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, help="a saved model folder (ModelState)")
    parser.add_argument("--tracking-uri", help="or: an MLflow store holding the registered model")
    parser.add_argument("--model-name", default="crm-recommender")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.model_dir or model_dir_from_registry(args.tracking_uri, args.model_name, Path(tmp))
        result = run(folder, args.clients)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
