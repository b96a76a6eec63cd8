"""Every kind of suggestion, one module each, and the registry the model answers through.

Adding a kind: a module with a `SuggestionKind` subclass, its line in `REGISTRY`, and its name
in `scoring.contract.KINDS` (the import below refuses a registry that disagrees with the contract).
"""
from __future__ import annotations

from scoring.contract import KINDS
from scoring.kinds.base import Ranked, SuggestionKind
from scoring.kinds.cross_sell import CrossSell
from scoring.kinds.next_basket import NextBasket
from scoring.kinds.replenishment import Replenishment
from scoring.kinds.service_package import ServicePackage
from scoring.kinds.upsell import Upsell

#: Kind name -> the object that ranks and explains it.
REGISTRY: dict[str, SuggestionKind] = {kind.name: kind for kind in (
    CrossSell(),
    Upsell(),
    ServicePackage(),
    Replenishment(),
    NextBasket(),
)}

if tuple(REGISTRY) != KINDS:
    raise ImportError(f"scoring.kinds registers {tuple(REGISTRY)} but the contract's KINDS are {KINDS}")

__all__ = ["REGISTRY", "Ranked", "SuggestionKind"]
