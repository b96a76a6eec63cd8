"""Blend weights: how much each signal counts in each kind's hand-made score.

Training chooses most of them on an inner time split (`training.tuning.GRIDS`) and stores the
choice in the model's meta (`"weights"`); these defaults are the starting point of that search
and what an untuned model uses. Two are never tuned but kept as weights rather than constants,
because they are read from the same dict by training and logged with every registered model:
`upsell_tradeup` (the upsell tuning runs on a light model without the trade-up table) and
`diversity_cap` (the learnt cross-sell re-ranking in training applies the same cap).

Weights tried once and never chosen (recency and due boosts and neighbours in replenishment,
subcategory volume and a price-step penalty in upsell) are gone with their code; a model whose
meta still lists them answers the same, since they were 0.
"""
from __future__ import annotations

DEFAULT_WEIGHTS: dict[str, float] = {
    "cross_sell_cooc": 0.0,      # co-occurrence with the client's history, against ALS taste (1)
    "cross_sell_pop": 0.0,       # popularity steadies sparse clients
    "cross_sell_recent": 0.0,    # what many clients bought in the last 30 days (season, novelties)
    "cross_sell_knn": 0.5,       # items bought by the same clients as the client's items
    "replenish_freq": 0.5,       # long-run frequency, against recency-weighted frequency (1)
    "replenish_repeat": 1.0,     # items people do buy again (milk) over one-off purchases (a grill)
    "cart_personal": 1.0,        # the known client's own frequent items in the cart widget
    "cart_taste": 0.0,           # the known client's ALS taste in the cart widget
    "upsell_taste": 0.3,         # ALS taste, against popularity (1)
    "upsell_tradeup": 0.3,       # clients who moved up from the client's items (never tuned)
    "service_taste": 1.0,        # ALS taste: what similar clients adopted
    "service_cooc": 5.0,         # co-occurrence with owned items
    "service_segment": 0.5,      # adoption in the client's ABC segment
    "next_basket_new": 0.0,      # next_basket: a new item's learnt chance against an own item's (0: own items first)
    "diversity_cap": 3,          # at most this many cross-sell suggestions per subcategory (never tuned)
    "upsell_cap": 3,             # the same rule for upsell lists
}
