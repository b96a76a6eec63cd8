"""Every /app screen, registered on one blueprint: import this module to serve them."""
from __future__ import annotations

from service.pages import clients, demo_shop, effect_dashboard, signin, tasks  # noqa: F401 - each adds its routes to `screens`
from service.pages.blueprint import screens

__all__ = ["screens"]
