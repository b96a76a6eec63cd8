"""Service packages: services the client does not use yet, then package offers.

Services score by taste (what similar clients adopted), co-occurrence with owned items and the
adoption in the client's segment. With a packages file, the business's packages are scored from
their members' scores and ranked with the services: A-class clients see premium tiers first, and
a client holding a tier is offered the next one, never a lower or equal one. Without packages,
mined bundles fill what the services leave.
"""
from __future__ import annotations

import numpy as np

from scoring import fallback, reasons
from scoring.cart import bundle_offers
from scoring.contract import Suggestion
from scoring.evidence import Evidence
from scoring.kinds.base import Ranked, SuggestionKind
from scoring.ranking import minmax, rank_with_rules, scatter_neighbours, strongest_seeds


def service_scores(ev: Evidence) -> np.ndarray:
    """Dense scores over items (meaningful for services)."""
    st, cat, w = ev.state, ev.catalogue, ev.weights
    vec = ev.taste
    taste = minmax(st.item_factors @ vec) if vec is not None else np.zeros(cat.n_items, np.float32)
    # each owned item counts as often as the client bought it
    cooc = minmax(scatter_neighbours(st.service_idx, st.service_score, ev.seeds, cat.n_items, ev.seed_counts))
    seg = fallback.segment_or_popular(ev)
    seg = np.where(np.isfinite(seg), seg, 0.0)
    return (w["service_taste"] * taste + w["service_cooc"] * cooc + w["service_segment"] * seg
            + 0.1 * cat.pop_score)


class ServicePackage(SuggestionKind):
    name = "service_package"
    anchored = True

    def rank(self, ev: Evidence, allowed: np.ndarray, limit: int) -> Ranked:
        scores = service_scores(ev)
        # a service the client uses is not an offer, nor another code of it; never a fee
        allowed = allowed & ev.state.item_service & ev.state.item_merch & ~ev.owned & ~ev.owned_groups
        ranked = rank_with_rules(scores, limit, allowed=allowed, unique=ev.catalogue.groups)
        return Ranked(ranked, scores[ranked], scores)

    def anchors(self, ev: Evidence, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return strongest_seeds(ev.state.service_idx, ev.state.service_score, ev.seeds, items)

    def explain(self, ev: Evidence, ranked: Ranked, limit: int, *, with_reasons: bool = True) -> list[Suggestion]:
        """Services, then package offers. Business packages are scored from their members' dense
        scores, so they are never answered from candidates (`ranked.dense` is then given)."""
        cat = ev.catalogue
        anchors, confs = ranked.anchors or self.anchors(ev, ranked.items)
        services = [cat.suggestion(i, self.name, value, service_reason(ev, i, anchor, conf))
                    for i, value, anchor, conf in zip(ranked.items.tolist(), ranked.scores.tolist(),
                                                      anchors.tolist(), confs.tolist(), strict=True)]
        if cat.n_packages == 0:
            # mined bundles only fill what the services leave
            offers = bundle_offers(cat, ev.seeds, ev.members_allowed, limit + len(ev.exclude), kind=self.name)
            return (services + [o for o in offers if o["item_id"] not in ev.exclude])[:limit]
        assert ranked.dense is not None
        # business packages are scored on the services' scale: one ranking
        offers = package_offers(ev, ranked.dense, ev.members_allowed, limit)
        return sorted(services + offers, key=lambda s: -s["score"])[:limit]


#: A related product is named in a service's reason only from this many shared baskets, and when
#: the service is taken with it this many times more often than in an average basket.
NAMED_FROM_BASKETS = 5
NAMED_FROM_LIFT = 2.0


def service_reason(ev: Evidence, service: int, anchor: int, shrunk: float) -> str:
    """A related product the client buys, when the baskets really tie it to the service (a
    person would accept "taken with Lettuce", not "with Designer Paper"); otherwise the plain
    count of its users."""
    st, cat = ev.state, ev.catalogue
    if anchor >= 0 and st.item_merch[anchor] and cat.groups[anchor] != cat.groups[service]:
        n_anchor = float(st.item_baskets[anchor])
        shrinkage = float(st.meta.get("params", {}).get("cooc_shrinkage", 0.0))
        together = int(round(shrunk * (n_anchor + shrinkage)))
        n_baskets = float(st.meta.get("n_baskets") or 0)
        base = float(st.item_baskets[service]) / n_baskets if n_baskets else 0.0
        lift = (together / n_anchor) / base if n_anchor and base else 0.0
        if together >= NAMED_FROM_BASKETS and lift >= NAMED_FROM_LIFT:
            return reasons.service_with(cat.names[anchor], together, int(n_anchor))
    return reasons.service_users(int(st.item_pop[service]), ev.segment_label)


def package_reason(ev: Evidence, members: np.ndarray, scores: np.ndarray) -> str:
    """Why a package fits: a member the client already uses, else its best member's own reason
    (a related product the client buys, or how many clients use it)."""
    cat = ev.catalogue
    owned = members[np.isin(members, ev.seeds)]
    if owned.size:
        return reasons.package_fit(cat.names[int(owned[0])])
    best = int(members[int(np.argmax(np.where(np.isfinite(scores[members]), scores[members], -np.inf)))])
    anchors, confs = strongest_seeds(ev.state.service_idx, ev.state.service_score, ev.seeds, np.array([best]))
    return reasons.package_member(cat.names[best], service_reason(ev, best, int(anchors[0]), float(confs[0])))


def package_offers(ev: Evidence, scores: np.ndarray, allowed: np.ndarray, limit: int) -> list[Suggestion]:
    """Business packages ranked for this client by their members' mean score; tier rules decide
    the order within a line (`package_lines`: care basic -> standard -> premium).

    A client holds a package when they bought every one of its items. Holding a tier of a line,
    they are offered the lowest tier above the highest they hold ("next tier of your current
    plan ...", ranked first) and never a tier at or below it; higher tiers still come, on their
    own score. A package none of whose items the model knows is never held and never offered:
    "every member bought" would be true of nothing, for every client."""
    st, cat = ev.state, ev.catalogue
    members = st.package_items
    valid = members >= 0
    safe = np.where(valid, members, 0)
    mean = np.where(valid, np.where(np.isfinite(scores[safe]), scores[safe], 0.0), 0.0).sum(1) / np.maximum(valid.sum(1), 1)
    owned = np.isin(safe, ev.seeds) & valid
    known = valid.any(1)
    held = known & (owned.sum(1) == valid.sum(1))
    tier = np.nan_to_num(st.package_tier, nan=0.0)
    lines = package_lines(members, st.item_subcat)
    abc = ev.segment_label
    out: list[Suggestion] = []
    for p in range(cat.n_packages):
        if held[p] or not known[p] or cat.package_ids[p] in ev.exclude or not allowed[safe[p][valid[p]]].all():
            continue
        bonus, reason = 0.0, package_reason(ev, safe[p][valid[p]], scores)
        held_here = np.flatnonzero(held & lines[p])
        if held_here.size:
            q = held_here[np.argmax(tier[held_here])]  # the highest tier held in this line
            if tier[p] <= tier[q]:
                continue  # never offer a lower or equal tier of what the client holds
            if tier[p] == tier[lines[q] & known & (tier > tier[q])].min():
                bonus, reason = 2.0, reasons.next_tier(cat.package_names[q])
            else:
                reason = reasons.above_tier(cat.package_names[q])
        elif abc == "A" and tier[p] > 0:
            bonus, reason = 0.25 * tier[p], reasons.premium_first(abc, reason)
        price = float(st.package_price[p])
        out.append({"item_id": cat.package_ids[p], "name": cat.package_names[p], "kind": "service_package",
                    "score": round(float(mean[p] + bonus), 6),
                    "price": round(price, 2) if np.isfinite(price) and price > 0 else None, "reason": reason,
                    "items": [str(cat.item_ids[i]) for i in safe[p][valid[p]]],
                    "tier": None if np.isnan(st.package_tier[p]) else float(st.package_tier[p]),
                    **({} if np.isfinite(price) and price > 0 else {"price_note": "the packages file gives no price"})})
    out.sort(key=lambda s: -s["score"])
    return out[:limit]


def package_lines(members: np.ndarray, item_subcat: np.ndarray) -> np.ndarray:
    """n_packages x n_packages: whether two packages are of one line, i.e. share a member item or
    a known subcategory (basic -> standard -> premium of one service). An unknown subcategory (-1)
    joins nothing: Complete Journey's chef shoppe items have none, and in a catalogue without
    subcategories every package would otherwise be one line, so holding one line's basic would hide
    every other line's basic and call their standard "the next tier" of it."""
    n = len(members)
    rows = np.repeat(np.arange(n), members.shape[1]).reshape(members.shape)
    valid = members >= 0
    subs = np.where(valid, item_subcat[np.where(valid, members, 0)], -1)
    shared = np.zeros((n, n), dtype=np.int64)
    for codes, keep in ((members, valid), (subs, subs >= 0)):
        if keep.any():  # one column per distinct member (subcategory) of any package
            _, column = np.unique(codes[keep], return_inverse=True)
            has = np.zeros((n, int(column.max()) + 1), dtype=np.int64)
            has[rows[keep], column] = 1
            shared += has @ has.T
    return shared > 0
