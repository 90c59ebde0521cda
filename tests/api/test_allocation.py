"""The bandwidth allocation's priorities and degradation order (pure logic)."""

from __future__ import annotations

from api.rooms.allocation import Allocation, Candidate, Choice, allocate

CAMERA: dict[Choice, float] = {"high": 600_000.0, "low": 150_000.0}
MIC: dict[Choice, float] = {"on": 40_000.0}
SCREEN: dict[Choice, float] = {"on": 800_000.0}


def camera(user: str, requested: Choice = "high", priority: int = 3) -> Candidate:
    return Candidate(user, "camera", requested, dict(CAMERA), priority)


def mic(user: str) -> Candidate:
    return Candidate(user, "microphone", "on", dict(MIC), 0)


def choices(result: dict[tuple[str, str], Allocation]) -> dict[str, str]:
    return {f"{user}/{source}": a.choice for (user, source), a in result.items()}


def test_without_an_estimate_everyone_gets_what_was_asked() -> None:
    result = allocate([camera("t", priority=2), camera("a", "low"), camera("b", "off")], None)
    assert choices(result) == {"t/camera": "high", "a/camera": "low", "b/camera": "off"}
    assert not any(a.limited for a in result.values())


def test_what_is_not_published_is_not_asked_for() -> None:
    only_low = Candidate("a", "camera", "high", {"low": 150_000.0}, 3)
    only_high = Candidate("b", "camera", "low", {"high": 600_000.0}, 3)
    nothing = Candidate("c", "camera", "high", {}, 3)
    result = allocate([only_low, only_high, nothing], 10e6)
    assert choices(result) == {"a/camera": "low", "b/camera": "high", "c/camera": "off"}
    assert not any(a.limited for a in result.values())


def test_audio_first_then_the_screen_then_the_teacher_then_the_others() -> None:
    screen = Candidate("t", "screen", "on", dict(SCREEN), 1, on_stage=True)
    teacher = Candidate("t", "camera", "high", dict(CAMERA), 2, on_stage=True)
    others = [camera(name, "low", priority=4) for name in "abc"]
    everyone = [mic("t"), mic("a"), screen, teacher, *others]
    # audio 80k + screen 800k + teacher low 150k + two thumbnails 300k = 1.33M
    result = allocate(everyone, 1_350_000)
    assert choices(result) == {
        "t/microphone": "on",
        "a/microphone": "on",
        "t/screen": "on",
        "t/camera": "low",
        "a/camera": "low",
        "b/camera": "low",
        "c/camera": "off",
    }
    assert result[("t", "camera")].limited and result[("c", "camera")].limited
    assert not result[("a", "camera")].limited
    # More room: the teacher's camera (on stage) is upgraded before any thumbnail is added.
    result = allocate(everyone, 1_800_000)
    assert result[("t", "camera")] == Allocation("high", False)
    assert result[("c", "camera")] == Allocation("off", True)


def test_audio_is_kept_when_nothing_else_fits() -> None:
    result = allocate([mic("t"), camera("t", priority=2)], 30_000)
    assert choices(result) == {"t/microphone": "on", "t/camera": "off"}
    assert result[("t", "camera")].limited and not result[("t", "microphone")].limited


def test_a_camera_degrades_to_low_before_it_goes_off() -> None:
    result = allocate([camera("t", priority=2)], 400_000)
    assert result[("t", "camera")] == Allocation("low", True)
    result = allocate([camera("t", priority=2)], 100_000)
    assert result[("t", "camera")] == Allocation("off", True)


def test_cheapest_layers_for_all_come_before_upgrades() -> None:
    first, second = camera("a", priority=3), camera("b", priority=4)
    # 750k: high for the first would leave nothing for the second; low for both fits.
    result = allocate([first, second], 750_000)
    assert choices(result) == {"a/camera": "high", "b/camera": "low"}
    result = allocate([first, second], 700_000)
    assert choices(result) == {"a/camera": "low", "b/camera": "low"}


def screen_in_layers(cap: int | None = None) -> Candidate:
    """A screen share in three temporal layers: 200, 400 and 800 kbit/s up to each."""
    return Candidate(
        "t",
        "screen",
        "on",
        dict(SCREEN),
        1,
        on_stage=True,
        temporal_rates={"on": [200_000.0, 400_000.0]},
        max_temporal=cap,
    )


def test_a_screen_share_loses_temporal_layers_before_it_is_turned_off() -> None:
    def screen(budget: float) -> Allocation:
        return allocate([mic("t"), screen_in_layers()], budget)[("t", "screen")]

    assert screen(1e6) == Allocation("on", False, None)
    assert screen(500_000.0) == Allocation("on", True, 1)
    assert screen(300_000.0) == Allocation("on", True, 0)
    assert screen(200_000.0) == Allocation("off", True, None)


def test_a_camera_goes_high_then_low_then_fewer_temporal_layers_of_low() -> None:
    layered = Candidate(
        "a", "camera", "high", dict(CAMERA), 3, temporal_rates={"low": [60_000.0, 100_000.0]}
    )
    result = {
        budget: allocate([layered], budget)[("a", "camera")]
        for budget in (700_000.0, 200_000.0, 120_000.0, 70_000.0, 50_000.0)
    }
    assert [(a.choice, a.temporal) for a in result.values()] == [
        ("high", None),
        ("low", None),
        ("low", 1),
        ("low", 0),
        ("off", None),
    ]


def test_a_frame_rate_cap_asked_for_is_not_a_limit() -> None:
    capped = allocate([screen_in_layers(cap=0)], None)[("t", "screen")]
    assert capped == Allocation("on", False, 0)
    capped = allocate([screen_in_layers(cap=1)], 10e6)[("t", "screen")]
    assert capped == Allocation("on", False, 1)
    # Under the cap it still degrades, and that is a limit.
    assert allocate([screen_in_layers(cap=1)], 250_000.0)[("t", "screen")] == Allocation(
        "on", True, 0
    )
