"""HUBKEEPER_PRICES read the same way by every capability that prices server time (usage
cost, the culler's backtest): a price per server-hour by profile, "*" for the rest."""

from __future__ import annotations

from collections.abc import Mapping

ANY_PROFILE = "*"  # the price of every profile without its own, and of sessions without one


def price_of(profile: str | None, prices: Mapping[str, float]) -> float:
    """The price per server-hour of a profile (None or '' = the default): its own, else
    "*", else 0."""
    if profile and profile != ANY_PROFILE and profile in prices:
        return prices[profile]
    return prices.get(ANY_PROFILE, 0.0)
