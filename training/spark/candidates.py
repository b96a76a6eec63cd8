"""Per-client candidate lists ranked on the executors by the `scoring` code itself.

The driver saves the fitted model to a folder; each Python worker loads it once
(`Recommender.load`, the arrays mapped, not copied) and ranks the client indices of its
partitions with `Recommender.rank_candidates`, the very function `training.candidates.precompute`
runs in process: there is no second implementation to drift. Only the ranked arrays travel back
(one row per chunk of clients, kind and array), and the driver stores them with
`Recommender.set_candidates`.

The folder must be readable by every executor: in local mode the file system is shared; on a
cluster, put `SPARK_WORK_DIR` on shared storage (a DBFS or NFS mount) or ship the folder with
`SparkContext.addFile` and read it through `SparkFiles.get` (docs/spark.md).
"""
from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scoring.recommender import CANDIDATES, Recommender

log = logging.getLogger(__name__)

#: Clients ranked per output row (the in-process precompute's chunk too).
CHUNK = 128
SCHEMA = "lo long, kind string, part string, dtype string, rows int, data binary"

_loaded: dict[str, Recommender] = {}  # the model a Python worker ranks with, loaded once per folder


def _model(folder: str) -> Recommender:
    if folder not in _loaded:
        _loaded.clear()
        _loaded[folder] = Recommender.load(folder)
    return _loaded[folder]


def rank_partition(folder: str, n: int, size: int, chunk: int, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """mapInPandas body: each chunk start `lo` of the partition -> its rankings as raw arrays."""
    rec = _model(folder)
    for batch in batches:
        rows = []
        for lo in batch["lo"].to_numpy(np.int64):
            hi = min(int(lo) + chunk, n)
            for kind, arrays in rec.rank_candidates(range(int(lo), hi), size).items():
                rows += [(int(lo), kind, part, array.dtype.str, hi - int(lo), np.ascontiguousarray(array).tobytes())
                         for part, array in arrays.items()]
        yield pd.DataFrame(rows, columns=["lo", "kind", "part", "dtype", "rows", "data"])


def precompute_on_spark(spark: Any, rec: Recommender, work_dir: str | Path, size: int = CANDIDATES,
                        partitions: int = 8, chunk: int = CHUNK) -> float:
    """Rank every known client of `rec` on the executors and store the lists in `rec`; the seconds taken."""
    started = time.perf_counter()
    folder = Path(work_dir).resolve() / f"model-{uuid.uuid4().hex[:12]}"
    rec.save(folder)
    try:
        n = len(rec.client_ids)
        starts = spark.createDataFrame(pd.DataFrame({"lo": np.arange(0, n, chunk, dtype=np.int64)}))
        starts = starts.repartition(max(1, min(partitions, -(-n // chunk))))
        ranked = starts.mapInPandas(partial(rank_partition, str(folder), n, size, chunk), SCHEMA).toPandas()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    shapes = rec.rank_candidates(range(0), size)  # the arrays each kind stores, empty
    merged = {kind: {part: np.full((n, size), -1 if a.dtype.kind == "i" else 0, dtype=a.dtype) for part, a in arrays.items()}
              for kind, arrays in shapes.items()}
    for row in ranked.itertuples(index=False):
        block = np.frombuffer(row.data, dtype=np.dtype(row.dtype)).reshape(row.rows, size)
        merged[row.kind][row.part][row.lo: row.lo + row.rows] = block
    rec.set_candidates(merged, size)
    seconds = time.perf_counter() - started
    log.info("candidates on spark: %d clients x %s, %d deep, in %.1fs", n, "/".join(merged), size, seconds)
    return seconds
