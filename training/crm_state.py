"""Pack each client's segments a period ago and their transitions into the model (read by `scoring/crm.py`), so
the service lists manager tasks and profiles without the features code."""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from features.changes import client_changes
from features.schema import ITEM
from scoring.crm import BEFORE_ARRAYS, period_of
from training.clients import change_settings
from training.config import TrainConfig

log = logging.getLogger(__name__)


def _strings(values: Any) -> np.ndarray:
    """Fixed-width unicode (saved by np.save without pickle); missing values are ''."""
    text = ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values]
    return np.asarray(text, dtype=f"<U{max([1, *map(len, text)])}")


def crm_state(tx: pd.DataFrame, items_df: pd.DataFrame | None, client_ids: np.ndarray, now: pd.Timestamp,
              config: TrainConfig) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(extras arrays, meta["crm"]) as of `now`, for the clients of the model in their order."""
    settings = change_settings(config)
    categories = (items_df.drop_duplicates(ITEM).set_index(ITEM)["category"]
                  if items_df is not None and "category" in items_df else None)
    table, moves = client_changes(tx, now, settings, categories)
    table = table.reindex(pd.Index(client_ids, dtype=object))
    position = pd.Series(np.arange(len(client_ids)), index=pd.Index(client_ids, dtype=object))
    moves = moves[moves["client_id"].isin(position.index)]
    arrays = {key: _strings(table[f"{name}_before"]) for name, key in BEFORE_ARRAYS.items()}
    arrays.update({"crm_t_client": position.reindex(moves["client_id"]).to_numpy(np.int32),
                   "crm_t_trigger": _strings(moves["trigger"]), "crm_t_action": _strings(moves["action"]),
                   "crm_t_severity": moves["severity"].to_numpy(np.float32),
                   "crm_t_change": moves["change"].to_numpy(np.float32),
                   "crm_t_detail": _strings(moves["detail"])})
    days = (pd.Timestamp(now).normalize() - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    meta = {"as_of": pd.Timestamp(now).isoformat(), "period_days": settings.period_days,
            "period": period_of(days, settings.period_days), "lapsing_days": settings.lapsing_days,
            "inactive_days": settings.inactive_days, "transitions": int(len(moves))}
    log.info("crm: %d transitions as of %s (%s)", len(moves), pd.Timestamp(now).date(),
             moves["trigger"].value_counts().to_dict())
    return arrays, meta
