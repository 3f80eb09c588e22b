"""SQL calls of pgfeed's set-up functions, for the migration operations of Django (pgfeed.django.operations) and
alembic (pgfeed.alembic): %s placeholders, as psycopg takes them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# create_feed's settings, and alter_feed's
FEED_SETTINGS = {"model", "weight_similarity", "weight_freshness", "weight_popularity", "profile_size", "freshness_unit",
                 "popularity_saturation", "mode", "max_per_group", "exact_max_items", "seen_for"}
ALTER_SETTINGS = FEED_SETTINGS | {"max_attempts", "search_depth", "search_max_depth", "ef_search"}


def check_settings(operation: str, settings: dict, allowed: set[str]) -> None:
    unknown = set(settings) - allowed
    if unknown:
        raise TypeError(f"{operation}: unknown settings {sorted(unknown)}; it takes {sorted(allowed)}")


def call(function: str, positional: Sequence[Any], named: dict[str, Any]) -> tuple[str, list]:
    """SQL that calls pgfeed.<function> with positional and named arguments (None ones left out), and its params;
    the second positional one is a table (regclass) for the attach functions and detach."""
    named = {key: value for key, value in named.items() if value is not None}
    table = function.startswith("attach") or function == "detach"
    arguments = [f"%s{'::regclass' if table and i == 1 else ''}" for i in range(len(positional))]
    arguments += [f"{key} => %s" for key in named]
    return f"SELECT pgfeed.{function}({', '.join(arguments)})", [*positional, *named.values()]
