"""Items like one item: the product page's "you may also like".

Taste similarity (cosine of ALS factors) plus co-occurrence; an item without history (new in
the catalogue) is reached through its subcategory, else its category, by popularity.
"""
from __future__ import annotations

import numpy as np

from scoring import reasons
from scoring.catalogue import Catalogue
from scoring.contract import Suggestion
from scoring.ranking import NEG, minmax, rank_with_rules, scatter_neighbours


def similar_items(cat: Catalogue, i: int, limit: int) -> list[Suggestion]:
    """The `limit` items most like item `i` (in stock, not `i` itself)."""
    st = cat.state
    sims = cat.unit_factors @ cat.unit_factors[i]
    cooc = scatter_neighbours(st.cooc_idx, st.cooc_score, np.array([i]), cat.n_items)
    scores = minmax(sims) + minmax(cooc)
    if not np.any(cat.unit_factors[i]) and not cooc.any():
        same = (st.item_subcat == st.item_subcat[i]) if st.item_subcat[i] >= 0 else (st.item_category == st.item_category[i])
        scores = np.where(same, cat.pop_score + 0.01, NEG).astype(np.float32)
        reason = reasons.category_popular(str(cat.subcategories[i] or cat.categories[i]))
    else:
        reason = None
    # merchandise in stock, none of the item's own product group (another code of it is no "other")
    allowed = st.item_in_stock & st.item_merch & (cat.groups != cat.groups[i])
    out = []
    for j in rank_with_rules(scores, limit, allowed=allowed, unique=cat.groups):
        j = int(j)
        if reason is None:
            conf = float(st.cooc_conf[i][st.cooc_idx[i] == j].max(initial=0.0))
            together = cat.together(i, conf)
            r = (reasons.bought_together(cat.names[i], together, int(st.item_baskets[i]))
                 if together >= reasons.MIN_TOGETHER else reasons.clients_like_you(cat.names[i]))
        else:
            r = reason
        out.append(cat.suggestion(j, "similar", scores[j], r))
    return out
