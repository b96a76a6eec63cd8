"""Where a model wins and loses: a task's primary metric per client segment (ABC class, activity).

A CRM team cares less about one average than about whether the model serves its best clients
(A class) and its lapsing clients well; this splits the evaluation's own rankings by segment.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.segments import client_segments
from training import metrics

_PER_QUERY = {"ndcg": metrics.ndcg_at_k, "hr": metrics.hit_rate_at_k}


def by_segment(keep: dict[str, Any], k: int = 10) -> pd.DataFrame:
    """Long table: task, ranker, segment_kind (abc | activity), segment, value, n."""
    ctx = keep["ctx"]
    segments = client_segments(ctx.transactions, now=ctx.now).reindex(ctx.clients.ids)
    rows = []
    for task_name, task in keep["tasks"].items():
        per_query = _PER_QUERY[task.metric]
        for ranker, recs in keep["rankings"][task_name].items():
            values = np.array([per_query(recs[r], task.relevant[r], k) for r in range(len(task))])
            for kind in ("abc", "activity"):
                labels = segments[kind].to_numpy()[task.clients]
                for label in pd.unique(labels):
                    mask = labels == label
                    rows.append({"task": task_name, "ranker": ranker, "segment_kind": kind, "segment": label,
                                 "value": float(values[mask].mean()), "n": int(mask.sum())})
    return pd.DataFrame(rows)
