"""How well the client value model predicts, on a time split: `python -m training value-evaluate`.

The model is fitted on the history up to a cut-off (the data's end less `holdout_days`) and its figures as
of the cut-off are compared with what each client did in the `horizons` days after it: whether they bought
(Brier score, ROC AUC, a reliability table by decile), how often and how much (per-client MAE, the total's
relative error). Two baselines, each as of the cut-off and using nothing after it:
- `recent`: "bought in the last H days", turned into a probability by the rate at which the recent and the
  not-recent bought in the H days before the cut-off (calibrated one window earlier, never on the truth);
- `past_rate`: the client's own historical rate of purchase days (purchase days ÷ days since the first), as a
  Poisson process: P = 1 - e^{-rate·H}, purchases = rate·H, revenue = that × their mean spend per visit.
It also checks the segments: do clients flagged lapsing at the cut-off buy less in the next days than the
active ones? Run on the full Complete Journey for docs/benchmarks.md (`make evaluate-value`).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from features.schema import CLIENT, PRICE, QUANTITY, TIMESTAMP
from features.segments import activity_states, client_segments
from features.value import value_summary
from scoring.value import ValueParams, value_figures
from training.config import TrainConfig
from training.value import fit_value_params

log = logging.getLogger(__name__)


def brier(p: np.ndarray, y: np.ndarray) -> float:
    """Mean squared error of a probability: 0 is perfect, a constant at the base rate scores rate·(1-rate)."""
    return float(np.mean((np.asarray(p, np.float64) - np.asarray(y, np.float64)) ** 2))


def roc_auc(score: np.ndarray, y: np.ndarray) -> float:
    """P(a random buyer scores above a random non-buyer), ties counting half (the Mann-Whitney statistic)."""
    y = np.asarray(y, bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Per decile of the predicted probability: its mean prediction and the observed share who bought."""
    order = np.argsort(p, kind="stable")
    return [{"decile": i + 1, "predicted": float(np.mean(p[part])), "observed": float(np.mean(y[part])),
             "clients": int(len(part))}
            for i, part in enumerate(np.array_split(order, bins)) if len(part)]


def _window_truth(tx: pd.DataFrame, start: pd.Timestamp, days: float, clients: pd.Index) -> pd.DataFrame:
    """Per client, purchase days and revenue in (start, start + days]."""
    window = tx[(tx[TIMESTAMP] > start) & (tx[TIMESTAMP] <= start + pd.Timedelta(days=days))]
    bought = window[window[QUANTITY] > 0]
    visits = bought.assign(day=bought[TIMESTAMP].dt.floor("D")).groupby(CLIENT)["day"].nunique()
    revenue = (window[QUANTITY] * window[PRICE]).fillna(0.0).groupby(window[CLIENT]).sum().clip(lower=0.0)
    return pd.DataFrame({"purchases": visits.reindex(clients, fill_value=0).astype(float),
                         "revenue": revenue.reindex(clients, fill_value=0.0)})


def recent_baseline(tx: pd.DataFrame, cutoff: pd.Timestamp, h: float, summary: pd.DataFrame) -> np.ndarray:
    """P(buy in the next h days) from "bought in the last h days", each group's rate measured one window back
    (among the clients known then)."""
    clients, earlier = summary.index, cutoff - pd.Timedelta(days=h)
    known = (summary["first_purchase"] <= earlier).to_numpy()
    was_recent = (_window_truth(tx, earlier - pd.Timedelta(days=h), h, clients)["purchases"] > 0).to_numpy()
    then = (_window_truth(tx, earlier, h, clients)["purchases"] > 0).to_numpy()
    rate_recent = then[was_recent & known].mean() if (was_recent & known).any() else 0.5
    rate_other = then[~was_recent & known].mean() if (~was_recent & known).any() else 0.5
    is_recent = (_window_truth(tx, earlier, h, clients)["purchases"] > 0).to_numpy()
    return np.where(is_recent, rate_recent, rate_other).astype(np.float64)


def past_rate_baseline(summary: pd.DataFrame, h: float) -> dict[str, np.ndarray]:
    """The client's own history as a Poisson rate of purchase days, the first one included."""
    days = np.maximum(summary["T"].to_numpy(np.float64), 1.0)
    rate = (summary["frequency"].to_numpy(np.float64) + 1.0) / days
    spend = np.where(summary["frequency"] > 0, summary["monetary"], np.nan)
    spend = np.where(np.isfinite(spend), spend, np.nanmean(spend))
    return {"p_purchase": 1.0 - np.exp(-rate * h), "expected_purchases": rate * h,
            "expected_revenue": rate * h * spend}


def _errors(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    return {"mae": float(np.mean(np.abs(predicted - actual))),
            "total_predicted": float(np.sum(predicted)), "total_actual": float(np.sum(actual)),
            "total_relative_error": float(np.sum(predicted) / max(np.sum(actual), 1e-9) - 1.0)}


def evaluate_value(tx: pd.DataFrame, holdout_days: float = 60, horizons: tuple[float, ...] = (30, 60),
                   config: TrainConfig | None = None) -> dict[str, Any]:
    """The figures of the module docstring, as one JSON-ready dict (with `reliability` tables for the plot)."""
    config = config or TrainConfig()
    started = time.perf_counter()
    end = tx[TIMESTAMP].max()
    cutoff = end - pd.Timedelta(days=holdout_days)
    history = tx[tx[TIMESTAMP] <= cutoff]
    summary = value_summary(history, as_of=cutoff)
    params = fit_value_params(summary, config, cutoff)
    clients = summary.index
    result: dict[str, Any] = {"data_end": end.isoformat(), "cutoff": cutoff.isoformat(), "clients": len(clients),
                              "params": params.__dict__, "horizons": {}}
    for h in horizons:
        truth = _window_truth(tx, cutoff, h, clients)
        bought = (truth["purchases"] > 0).to_numpy()
        model = value_figures(params, summary["frequency"], summary["recency"], summary["T"], summary["monetary"], h)
        past = past_rate_baseline(summary, h)
        recent = recent_baseline(tx, cutoff, h, summary)
        probabilities = {"model": model["p_purchase"], "recent": recent, "past_rate": past["p_purchase"]}
        result["horizons"][str(int(h))] = {
            "base_rate": float(bought.mean()),
            "brier": {name: brier(p, bought) for name, p in probabilities.items()},
            "auc": {name: roc_auc(p, bought) for name, p in probabilities.items()},
            "reliability": {name: reliability(np.asarray(p), bought) for name, p in probabilities.items()
                            if name != "recent"},
            "purchases": {"model": _errors(model["expected_purchases"], truth["purchases"].to_numpy()),
                          "past_rate": _errors(past["expected_purchases"], truth["purchases"].to_numpy())},
            "revenue": {"model": _errors(model["expected_revenue"], truth["revenue"].to_numpy()),
                        "past_rate": _errors(past["expected_revenue"], truth["revenue"].to_numpy())},
        }
    result["activity"] = activity_outcomes(tx, cutoff, max(horizons), config)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def activity_outcomes(tx: pd.DataFrame, cutoff: pd.Timestamp, days: float, config: TrainConfig) -> dict[str, Any]:
    """Per activity state at the cut-off: clients, the share who bought in the next `days`, mean purchase days."""
    history = tx[tx[TIMESTAMP] <= cutoff]
    states = activity_states(history, now=cutoff, lapsing_days=config.lapsing_days,
                             inactive_days=config.inactive_days)
    truth = _window_truth(tx, cutoff, days, states.index)
    return {state: {"clients": int((states == state).sum()),
                    "bought_share": float((truth["purchases"][states == state] > 0).mean()),
                    "mean_purchases": float(truth["purchases"][states == state].mean())}
            for state in ("active", "lapsing", "inactive") if (states == state).any()}


def plot(result: dict[str, Any], clv_by_abc: pd.DataFrame | None, folder: Path) -> list[Path]:
    """docs/ plots: the reliability diagram (model and past rate, each horizon) and CLV by ABC class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    fig, axes = plt.subplots(1, len(result["horizons"]), figsize=(5 * len(result["horizons"]), 4.5), squeeze=False)
    for ax, (h, figures) in zip(axes[0], result["horizons"].items(), strict=True):
        for name, table in figures["reliability"].items():
            ax.plot([row["predicted"] for row in table], [row["observed"] for row in table], "o-",
                    label=f"{name} (Brier {figures['brier'][name]:.3f})")
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set(title=f"P(a purchase in {h} days), deciles", xlabel="predicted", ylabel="observed", xlim=(0, 1),
               ylim=(0, 1))
        ax.legend(loc="upper left")
    fig.tight_layout()
    written.append(folder / "value_calibration.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    if clv_by_abc is not None and len(clv_by_abc):
        fig, ax = plt.subplots(figsize=(6, 4.5))
        classes = [c for c in ("A", "B", "C") if (clv_by_abc["abc"] == c).any()]
        ax.boxplot([clv_by_abc.loc[clv_by_abc["abc"] == c, "clv"].clip(lower=1.0) for c in classes],
                   tick_labels=classes)
        ax.set(yscale="log", title="CLV (365 days, discounted) by ABC class", ylabel="CLV")
        fig.tight_layout()
        written.append(folder / "value_clv_by_abc.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


def clv_by_abc(tx: pd.DataFrame, config: TrainConfig) -> pd.DataFrame:
    """Each client's CLV as of the data's end, with their ABC class (the distribution plot's data)."""
    end = tx[TIMESTAMP].max()
    summary = value_summary(tx, as_of=end)
    params: ValueParams = fit_value_params(summary, config, end)
    figures = value_figures(params, summary["frequency"], summary["recency"], summary["T"], summary["monetary"])
    abc = client_segments(tx, now=end)["abc"].reindex(summary.index)
    return pd.DataFrame({"clv": figures["clv"], "abc": abc.to_numpy()}, index=summary.index)


def write(result: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    log.info("wrote %s", out)


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The figures as a markdown table (what docs/benchmarks.md quotes)."""
    lines = [f"cut-off {result['cutoff'][:10]} (data end {result['data_end'][:10]}), {result['clients']:,} clients",
             "", "| horizon | base rate | Brier model / recent / past rate | AUC model / recent / past rate | "
             "purchases MAE model / past rate (total error) | revenue MAE model / past rate (total error) |",
             "|---|---|---|---|---|---|"]
    for h, f in result["horizons"].items():
        b, a, p, r = f["brier"], f["auc"], f["purchases"], f["revenue"]
        lines.append(
            f"| {h} d | {f['base_rate']:.3f} | {b['model']:.4f} / {b['recent']:.4f} / {b['past_rate']:.4f} | "
            f"{a['model']:.3f} / {a['recent']:.3f} / {a['past_rate']:.3f} | "
            f"{p['model']['mae']:.3f} ({p['model']['total_relative_error']:+.1%}) / "
            f"{p['past_rate']['mae']:.3f} ({p['past_rate']['total_relative_error']:+.1%}) | "
            f"{r['model']['mae']:.2f} ({r['model']['total_relative_error']:+.1%}) / "
            f"{r['past_rate']['mae']:.2f} ({r['past_rate']['total_relative_error']:+.1%}) |")
    lines += ["", "| activity at the cut-off | clients | bought in the next days | mean purchase days |", "|---|---|---|---|"]
    lines += [f"| {state} | {v['clients']:,} | {v['bought_share']:.1%} | {v['mean_purchases']:.2f} |"
              for state, v in result["activity"].items()]
    return lines
