"""Run by tests/integration/test_spark_training.py in a process of its own (py4j's sockets and
pyspark's pandas warnings stay out of the test process): the Spark engine's evidence and pair
counts against the in-process ones on a data folder, printed as one JSON line.

    python tests/support/spark_steps.py DATA_DIR
"""
from __future__ import annotations

import json
import sys

import numpy as np
import scipy.sparse as sp

from features.baskets import basket_matrix
from features.loader import load_dataset
from features.matrix import confidence_matrix
from training.config import TrainConfig
from training.context import TrainContext
from training.models.bundles import pair_counts
from training.spark import cooc, evidence
from training.spark.session import spark_session


def main(folder: str) -> dict:
    data = load_dataset(folder)
    ctx = TrainContext.build(data.transactions, data.items, data.packages)
    spark = spark_session(TrainConfig(spark_master="local[1]", spark_shuffle_partitions=2, spark_driver_memory="1g"))
    try:
        weighted = evidence.bm25_evidence(evidence.coded_lines(spark, ctx), len(ctx.clients)).toPandas()
        baskets, _ = basket_matrix(ctx.transactions, ctx.items)
        counted = cooc.pair_counts(spark, baskets)
        result_size = spark.sparkContext.getConf().get("spark.driver.maxResultSize")
    finally:
        spark.stop()
    on_spark = sp.csr_matrix((weighted["value"], (weighted["client"], weighted["item"])),
                             shape=(len(ctx.clients), len(ctx.items)))
    local = confidence_matrix(ctx.transactions, ctx.clients, ctx.items, weighting="bm25", codes=ctx.codes)
    expected = pair_counts(baskets)
    return {"evidence_nnz": [int(on_spark.nnz), int(local.nnz)],
            "evidence_max_difference": float(abs(on_spark - local).max()),
            "pairs_nnz": [int(counted.counts.nnz), int(expected.counts.nnz)],
            "pairs_differing": int((counted.counts != expected.counts).nnz),
            "same_indptr": bool(np.array_equal(counted.counts.indptr, expected.counts.indptr)),
            "same_item_baskets": bool(np.array_equal(counted.item_baskets, expected.item_baskets)),
            "baskets": [counted.n_baskets, expected.n_baskets], "max_result_size": result_size}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
