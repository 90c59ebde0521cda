"""Which layer of each source one subscriber gets: what it asked for, within what its
downlink can take, allocated in priority order (Jitsi Videobridge's bandwidth
allocation: what is on stage gets the best that fits, then every thumbnail its lowest
layer in priority order, then upgrades in the same order). Pure logic: no router, no
clock.

Audio is always allocated (it is the cheapest and matters most); then the screen share,
the teacher's camera (or the active speaker's), then the other cameras as requested. A
camera degrades high -> low (-> fewer temporal layers) -> off, a screen share on -> fewer
temporal layers -> off, before anything is sent beyond the estimate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
    temporal_rates: Mapping[Choice, Sequence[float]] = field(default_factory=dict)
    """For a choice sent in temporal layers (VP8 ``L1T3``): bit/s of temporal layers 0
    to t, for each t below the top one (missing: one temporal layer)."""
    max_temporal: int | None = None
    """The highest temporal layer asked for (a frame-rate cap), None: all."""


@dataclass(frozen=True)
class Allocation:
    choice: Choice
    limited: bool
    """Below what was requested (and published) because the estimate does not fit it."""
    temporal: int | None = None
    """The highest temporal layer to forward of `choice` (None: all of them)."""


@dataclass(frozen=True)
class _Option:
    choice: Choice
    temporal: int | None
    rate: float


_OFF = _Option("off", None, 0.0)


def allocate(
    candidates: Sequence[Candidate], budget: float | None
) -> dict[tuple[str, str], Allocation]:
    """The choice for each candidate, keyed by ``(user_id, source)``; `budget` is the
    subscriber's downlink estimate in bit/s (None: unknown, everything requested fits).

    A source degrades through its choices best first; its lowest choice, when sent in
    temporal layers, then through fewer of them (a lower frame rate) before ``off``."""
    ladders = {(c.user_id, c.source): _ladder(c) for c in candidates}
    if budget is None:
        return {
            key: _result(ladder[0] if ladder else _OFF, False) for key, ladder in ladders.items()
        }
    ordered = sorted(candidates, key=lambda c: c.priority)
    chosen: dict[tuple[str, str], _Option] = {}
    left = budget
    for candidate in ordered:  # audio regardless of the estimate: it is last to go
        key = (candidate.user_id, candidate.source)
        if candidate.source == "microphone" and ladders[key]:
            chosen[key] = ladders[key][0]
            left -= chosen[key].rate
    for candidate in ordered:  # the stage's best, everyone else's cheapest, in order
        key = (candidate.user_id, candidate.source)
        if key in chosen:
            continue
        options = ladders[key]
        if not candidate.on_stage:
            options = options[-1:]
        chosen[key] = _OFF
        for option in options:
            if option.rate <= left:
                chosen[key] = option
                left -= option.rate
                break
    for candidate in ordered:  # then the best that fits, in the same order
        key = (candidate.user_id, candidate.source)
        current = chosen[key]
        if current is _OFF:
            continue
        for option in ladders[key]:
            if option == current:
                break
            if option.rate - current.rate <= left:
                chosen[key] = option
                left -= option.rate - current.rate
                break
    return {
        key: _result(chosen[key], bool(ladder) and chosen[key] != ladder[0])
        for key, ladder in ladders.items()
    }


def _result(option: _Option, limited: bool) -> Allocation:
    return Allocation(option.choice, limited, option.temporal)


def _ladder(candidate: Candidate) -> list[_Option]:
    """What `candidate` can get, best first: its published choices from what was asked
    down, then fewer temporal layers of the last one (empty: it asked for nothing)."""
    wanted = _wanted(candidate)
    if wanted == "off":
        return []
    ladder = _BETTER_FIRST[candidate.source]
    choices = [o for o in ladder[ladder.index(wanted) :] if o in candidate.rates]
    cap = candidate.max_temporal
    options = [_option(candidate, choice, cap) for choice in choices]
    lowest = choices[-1]
    below = len(candidate.temporal_rates.get(lowest, ()))
    top = below if cap is None else min(cap, below)
    options += [
        _Option(lowest, t, candidate.temporal_rates[lowest][t]) for t in range(top - 1, -1, -1)
    ]
    return options


def _option(candidate: Candidate, choice: Choice, cap: int | None) -> _Option:
    rates = candidate.temporal_rates.get(choice, ())
    if cap is None or cap >= len(rates):
        return _Option(choice, None, candidate.rates[choice])
    return _Option(choice, cap, rates[cap])


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
