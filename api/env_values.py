"""Reading one setting from the environment, for the settings modules that raise
`ValueError` (`api.ice_settings`, `api.cluster.settings`; `api.config.load_settings` turns
it into ``ConfigError``)."""

from __future__ import annotations

from collections.abc import Mapping


def env_number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """`name` as a number in ``[low, high]``, `default` when unset or empty."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return value
