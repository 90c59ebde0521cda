"""Which layer of each source one subscriber gets: what it asked for, within what its
downlink can take, allocated in priority order (Jitsi Videobridge's bandwidth
allocation: what is on stage gets the best that fits, then every thumbnail its lowest
layer in priority order, then upgrades in the same order). Pure logic: no router, no
clock.

Audio is always allocated (it is the cheapest and matters most); then the screen share,
the teacher's camera (or the active speaker's), then the other cameras as requested. A
camera degrades high -> low -> off before anything is sent beyond the estimate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Choice = Literal["high", "low", "off", "on"]
CAMERA_CHOICES: tuple[Choice, ...] = ("high", "low", "off")
SWITCH_CHOICES: tuple[Choice, ...] = ("on", "off")
_BETTER_FIRST: dict[str, tuple[Choice, ...]] = {
    "camera": ("high", "low"),
    "screen": ("on",),
    "microphone": ("on",),
}


@dataclass(frozen=True)
class Candidate:
    """One (publisher, source) the subscriber could receive."""

    user_id: str
    source: str
    requested: Choice
    rates: Mapping[Choice, float]
    """bit/s of each choice the publisher sends now (a camera's ``high``/``low`` layers;
    ``on`` for a screen or microphone). Choices it does not publish are missing."""
    priority: int
    """Lower first."""
    on_stage: bool = False
    """Shown large (the screen share, the teacher's camera): gets the best that fits
    before any thumbnail gets its lowest layer."""


@dataclass(frozen=True)
class Allocation:
    choice: Choice
    limited: bool
    """Below what was requested (and published) because the estimate does not fit it."""


def allocate(
    candidates: Sequence[Candidate], budget: float | None
) -> dict[tuple[str, str], Allocation]:
    """The choice for each candidate, keyed by ``(user_id, source)``; `budget` is the
    subscriber's downlink estimate in bit/s (None: unknown, everything requested fits)."""
    wanted = {(c.user_id, c.source): _wanted(c) for c in candidates}
    if budget is None:
        return {key: Allocation(choice, False) for key, choice in wanted.items()}
    ordered = sorted(candidates, key=lambda c: c.priority)
    chosen: dict[tuple[str, str], Choice] = {}
    left = budget
    for candidate in ordered:  # audio regardless of the estimate: it is last to go
        key = (candidate.user_id, candidate.source)
        if candidate.source == "microphone" and wanted[key] == "on":
            chosen[key] = "on"
            left -= candidate.rates["on"]
    for candidate in ordered:  # the stage's best, everyone else's cheapest, in order
        key = (candidate.user_id, candidate.source)
        if key in chosen:
            continue
        options = _options(candidate, wanted[key])
        if not candidate.on_stage:
            options = options[-1:]
        chosen[key] = "off"
        for option in options:
            if candidate.rates[option] <= left:
                chosen[key] = option
                left -= candidate.rates[option]
                break
    for candidate in ordered:  # then the best that fits, in the same order
        key = (candidate.user_id, candidate.source)
        current = chosen[key]
        if current == "off":
            continue
        spent = candidate.rates[current]
        for option in _options(candidate, wanted[key]):
            if option == current:
                break
            if candidate.rates[option] - spent <= left:
                chosen[key] = option
                left -= candidate.rates[option] - spent
                break
    return {key: Allocation(chosen[key], chosen[key] != wanted[key]) for key in wanted}


def _wanted(candidate: Candidate) -> Choice:
    """What was requested, as far as it is published (a camera asked ``high`` that
    publishes only ``low`` gets ``low``, not limited)."""
    if candidate.requested == "off":
        return "off"
    ladder = _BETTER_FIRST[candidate.source]
    start = ladder.index(candidate.requested) if candidate.requested in ladder else 0
    for option in ladder[start:]:
        if option in candidate.rates:
            return option
    for option in reversed(ladder[:start]):
        if option in candidate.rates:
            return option
    return "off"


def _options(candidate: Candidate, wanted: Choice) -> list[Choice]:
    """Published choices from `wanted` down, best first (empty when `wanted` is off)."""
    if wanted == "off":
        return []
    ladder = _BETTER_FIRST[candidate.source]
    return [o for o in ladder[ladder.index(wanted) :] if o in candidate.rates]
