"""The client x item evidence on Spark: what `features.matrix.confidence_matrix(weighting="bm25")` computes.

Per (client, item): distinct purchase occasions (orders with a positive line) less the return
lines, clipped at zero; then BM25 as `features.matrix.bm25_weight` (saturation k1, length
normalisation b over every indexed client, idf floored at 0). The same numbers as the in-process
matrix, aggregated by the executors instead of scipy, so ALS on Spark learns from the same evidence.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.schema import ORDER, QUANTITY
from training.context import TrainContext

CLIENT_COL, ITEM_COL, VALUE_COL = "client", "item", "value"


def coded_lines(spark: Any, ctx: TrainContext) -> Any:
    """The context's lines as (client, item, order, positive) codes: its index spaces, not ids,
    so nothing is translated twice. Lines whose client or item the context does not index are
    left out, as `confidence_matrix` leaves them out."""
    known = (ctx.line_client >= 0) & (ctx.line_item >= 0)
    quantity = ctx.transactions[QUANTITY].to_numpy(dtype=np.float64, na_value=np.nan)
    frame = pd.DataFrame({CLIENT_COL: ctx.line_client[known].astype(np.int32),
                          ITEM_COL: ctx.line_item[known].astype(np.int32),
                          "order_code": pd.factorize(ctx.transactions[ORDER])[0][known].astype(np.int64),
                          "positive": quantity[known] > 0})
    return spark.createDataFrame(frame)


def bm25_evidence(lines: Any, n_clients: int, k1: float = 1.2, b: float = 0.75) -> Any:
    """(client, item, value) with value > 0: BM25-weighted evidence, as `confidence_matrix`."""
    from pyspark.sql import functions as F

    occasions = (lines.filter("positive").select(CLIENT_COL, ITEM_COL, "order_code").distinct()
                 .groupBy(CLIENT_COL, ITEM_COL).agg(F.count(F.lit(1)).cast("double").alias("plus")))
    returns = (lines.filter(~F.col("positive")).groupBy(CLIENT_COL, ITEM_COL)
               .agg(F.count(F.lit(1)).cast("double").alias("minus")))
    evidence = (occasions.join(returns, [CLIENT_COL, ITEM_COL], "full_outer")
                .select(CLIENT_COL, ITEM_COL, (F.coalesce("plus", F.lit(0.0)) - F.coalesce("minus", F.lit(0.0)))
                        .alias("evidence"))
                .filter(F.col("evidence") > 0))
    buyers = evidence.groupBy(ITEM_COL).agg(F.count(F.lit(1)).alias("buyers"))
    lengths = evidence.groupBy(CLIENT_COL).agg(F.sum("evidence").alias("length"))
    # the mean over every indexed client, those with no evidence included (scipy's row_sums.mean())
    mean_length = lengths.agg(F.sum("length")).first()[0] / max(n_clients, 1) if n_clients else 1.0
    idf = F.greatest(F.lit(float(np.log(max(n_clients, 1)))) - F.log1p(F.col("buyers")), F.lit(0.0))
    norm = (1.0 - b) + b * F.col("length") / F.lit(mean_length or 1.0)
    value = F.col("evidence") * (k1 + 1.0) / (k1 * norm + F.col("evidence")) * idf
    return (evidence.join(buyers, ITEM_COL).join(lengths, CLIENT_COL)
            .select(CLIENT_COL, ITEM_COL, value.cast("float").alias(VALUE_COL))
            .filter(F.col(VALUE_COL) > 0))
