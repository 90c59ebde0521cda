"""Selective forwarding on the classroom page (real Chromium, real server): the camera goes
out in two layers and nothing goes out while muted; small tiles receive the low layer, large
ones the high layer, tiles paged away nothing, the active speaker is promoted onto the page;
the teacher's screen share plays on the students' pages, late joiners included."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import expect

from scripts.synthpeer.api_client import ClassroomApi
from tests.browser.accounts import enrolled_class, logged_in
from tests.browser.conftest import PageFactory
from tests.browser.pages import ClassroomPage
from tests.waiting import wait_until

pytestmark = pytest.mark.browser

Stats = dict[str, Any]

SENT_RTP = "() => window.classroom.sentRtp()"
RECEIVED_VIDEO = "([userId, source]) => window.classroom.receivedVideo(userId, source)"
SCREEN_FRAMES = """() => document.querySelector('[data-testid="screen-video"]')
  .getVideoPlaybackQuality().totalVideoFrames"""
# How long a stream must not move to count as stopped: several RTCP/stats intervals, while
# a live 15-30 fps stream moves every few tens of milliseconds.
STILL_FOR = 1.5


async def join(page: ClassroomPage, *, mute_microphone: bool = False) -> None:
    """Join the room; `mute_microphone` mutes at once, so this page never becomes the active
    speaker (the fake microphones all beep) and the layout stays put."""
    await expect(page.by("join-room")).to_be_enabled()
    await page.by("join-room").click()
    if mute_microphone:
        await page.by("toggle-mic").click()
        await expect(page.by("self-tile")).to_have_attribute("data-audio", "off")
    await expect(page.by("self-tile")).to_have_attribute("data-connection", "connected")


async def sent(page: ClassroomPage) -> list[Stats]:
    streams: list[Stats] = await page.page.evaluate(SENT_RTP)
    return streams


async def received(page: ClassroomPage, user_id: str, source: str = "camera") -> Stats | None:
    stats: Stats | None = await page.page.evaluate(RECEIVED_VIDEO, [user_id, source])
    return stats


async def until_received(
    page: ClassroomPage, user_id: str, check: Callable[[Stats], bool], source: str = "camera"
) -> Stats:
    """Wait until the inbound stream of `user_id`'s `source` satisfies `check`."""
    last: Stats | None = None

    async def met() -> bool:
        nonlocal last
        last = await received(page, user_id, source)
        return last is not None and check(last)

    try:
        await wait_until(met, timeout=20)
    except TimeoutError:
        layers = [update[user_id] for update in page.received("LAYERS") if user_id in update]
        raise AssertionError(
            f"{page.label} receiving {user_id}'s {source}: {last}; LAYERS said {layers[-3:]}"
        ) from None
    assert last is not None
    return last


async def until_still(read: Callable[[], Any], what: str) -> Any:
    """Wait until `read()` returns the same value over STILL_FOR seconds; returns it."""
    history: list[Any] = []

    async def still() -> bool:
        history.append(await read())
        window = int(STILL_FOR / 0.1)
        return len(history) > window and all(v == history[-1] for v in history[-window:])

    try:
        await wait_until(still, timeout=20)
    except TimeoutError:
        raise AssertionError(f"{what} kept changing: {history[-5:]}") from None
    return history[-1]


def by_layer(streams: list[Stats]) -> dict[str, Stats]:
    return {s["layer"]: s for s in streams if s["kind"] == "video" and s.get("source") == "camera"}


async def test_the_camera_goes_out_in_two_layers_and_nothing_goes_out_while_muted(
    api: ClassroomApi, open_page: PageFactory
) -> None:
    live = await enrolled_class(api, "Layers", "Alice Student")
    t = await logged_in(open_page, live.teacher, "teacher")
    await t.select_class(live.class_id)
    await join(t)

    async def two_layers_encoded() -> bool:
        layers = by_layer(await sent(t))
        return set(layers) == {"high", "low"} and all(
            (s["frameWidth"] or 0) > 0 for s in layers.values()
        )

    await wait_until(two_layers_encoded, timeout=20)
    streams = await sent(t)
    layers = by_layer(streams)
    # The camera is 640x360: the high layer sends it as is (up to 600 kbit/s; the encoder
    # scales it down only when the bandwidth estimate is short), the low one at half size.
    for layer, rate, scale in (("high", 600_000, 1), ("low", 150_000, 2)):
        encoding = layers[layer]["encoding"]
        assert (encoding["maxBitrate"], encoding["scaleResolutionDownBy"]) == (rate, scale)
        assert encoding["scalabilityMode"] in (None, "L1T1"), encoding  # one temporal layer
    assert 0 < layers["high"]["frameWidth"] <= 640, layers
    assert 0 < layers["low"]["frameWidth"] <= 320, layers
    assert 0 < layers["low"]["frameHeight"] <= 180, layers
    assert [s["kind"] for s in streams].count("video") == 2, streams

    # The publish offer named every m-section by source and layer, and asked for Opus DTX.
    (offer,) = t.sent("WEBRTC_OFFER")
    assert offer["pc"] == "publish"
    assert sorted(offer["tracks"].values(), key=str) == sorted(
        [
            {"source": "microphone"},
            {"source": "camera", "layer": "high"},
            {"source": "camera", "layer": "low"},
        ],
        key=str,
    )
    assert {s["mid"] for s in streams} == set(offer["tracks"])
    sdp_lines = offer["offer"]["sdp"].split("\r\n")
    opus = [line.split()[0].split(":")[1] for line in sdp_lines if " opus/48000" in line]
    assert opus, sdp_lines
    assert any(
        line.startswith(f"a=fmtp:{opus[0]} ") and "usedtx=1" in line for line in sdp_lines
    ), sdp_lines

    def bytes_of(kind: str) -> Callable[[], Any]:
        async def read() -> list[int]:
            return sorted(s["bytesSent"] for s in await sent(t) if s["kind"] == kind)

        return read

    # Muted: the microphone and then the camera (both layers) send nothing at all.
    await t.by("toggle-mic").click()
    muted_audio = await until_still(bytes_of("audio"), "audio bytes sent while muted")
    await t.by("toggle-camera").click()
    muted_video = await until_still(bytes_of("video"), "video bytes sent while the camera is off")
    assert t.sent("MEDIA_STATE")[-1] == {"audio": False, "video": False}

    async def sending_again() -> bool:
        audio, video = await bytes_of("audio")(), await bytes_of("video")()
        return audio[0] > muted_audio[0] and all(
            now > before for now, before in zip(video, muted_video, strict=True)
        )

    await t.by("toggle-mic").click()
    await t.by("toggle-camera").click()
    await wait_until(sending_again, timeout=20)


async def test_small_tiles_get_the_low_layer_large_tiles_the_high_one_and_paged_away_nothing(
    api: ClassroomApi, open_page: PageFactory
) -> None:
    live = await enrolled_class(api, "Grid", "Alice Student", "Bob Student")
    teacher, (alice, bob) = live.teacher, live.students
    t = await logged_in(open_page, teacher, "teacher")
    a = await logged_in(open_page, alice, "alice")
    b = await logged_in(open_page, bob, "bob")
    for page in (t, a, b):
        await page.select_class(live.class_id)
        await join(page, mute_microphone=True)

    # Alice's page: the teacher large (high layer), Bob small (low layer).
    await expect(a.remote_tile(teacher.id)).to_have_attribute("data-placement", "large")
    await expect(a.by("stage").locator('[data-testid="remote-tile"]')).to_have_count(1)
    await expect(a.remote_tile(bob.id)).to_have_attribute("data-placement", "small")
    await until_received(a, teacher.id, lambda s: (s["frameWidth"] or 0) > 320)
    await until_received(a, bob.id, lambda s: 0 < (s["frameWidth"] or 0) <= 320)
    assert {teacher.id: {"camera": "high"}, bob.id: {"camera": "low"}}.items() <= (
        merged(a.sent("SUBSCRIPTION")).items()
    )

    # The teacher's page, one student per page: Alice on it (low layer), Bob paged away.
    await t.page.evaluate("window.classroom.setPageSize(1)")
    await expect(t.by("grid-page")).to_have_text("Page 1 of 2")
    await expect(t.remote_tile(alice.id)).to_be_visible()
    await expect(t.remote_tile(bob.id)).to_be_hidden()
    await expect(t.remote_tile(bob.id)).to_have_attribute("data-placement", "off")
    await until_received(t, alice.id, lambda s: 0 < (s["frameWidth"] or 0) <= 320)

    async def bob_bytes() -> Any:
        stats = await received(t, bob.id)
        return stats and stats["bytesReceived"]

    off_at = await until_still(bob_bytes, "Bob's camera on the teacher's page while paged away")
    assert merged(t.sent("SUBSCRIPTION"))[bob.id] == {"camera": "off"}

    # The next page: Bob comes back (low layer again), Alice goes.
    await t.by("grid-next").click()
    await expect(t.by("grid-page")).to_have_text("Page 2 of 2")
    await expect(t.remote_tile(bob.id)).to_be_visible()
    await expect(t.remote_tile(alice.id)).to_be_hidden()
    await until_received(
        t, bob.id, lambda s: s["bytesReceived"] > off_at and 0 < (s["frameWidth"] or 0) <= 320
    )

    async def alice_bytes() -> Any:
        stats = await received(t, alice.id)
        return stats and stats["bytesReceived"]

    alice_off_at = await until_still(alice_bytes, "Alice's camera while paged away")
    assert merged(t.sent("SUBSCRIPTION"))[alice.id] == {"camera": "off"}

    # Alice speaks (the only microphone on): she is promoted onto the teacher's page, in
    # Bob's place, and her camera flows again.
    await a.by("toggle-mic").click()
    await expect(t.remote_tile(alice.id)).to_have_attribute("data-promoted", "true")
    await expect(t.remote_tile(alice.id)).to_be_visible()
    await expect(t.remote_tile(bob.id)).to_be_hidden()
    await until_received(
        t,
        alice.id,
        lambda s: s["bytesReceived"] > alice_off_at and 0 < (s["frameWidth"] or 0) <= 320,
    )
    assert merged(t.sent("SUBSCRIPTION"))[alice.id] == {"camera": "low"}
    assert merged(t.sent("SUBSCRIPTION"))[bob.id] == {"camera": "off"}
    # Audio was never switched off: the subscription only ever named cameras.
    assert all(set(entry) == {"camera"} for s in t.sent("SUBSCRIPTION") for entry in s.values())


def merged(updates: list[dict[str, dict[str, str]]]) -> dict[str, dict[str, str]]:
    """Partial SUBSCRIPTION updates merged the way the server merges them."""
    result: dict[str, dict[str, str]] = {}
    for update in updates:
        for user_id, entry in update.items():
            result[user_id] = {**result.get(user_id, {}), **entry}
    return result


async def test_the_teachers_screen_share_plays_on_the_students_pages(
    api: ClassroomApi, open_page: PageFactory
) -> None:
    live = await enrolled_class(api, "Slides", "Alice Student", "Bob Student")
    teacher, (alice, bob) = live.teacher, live.students
    t = await logged_in(open_page, teacher, "teacher")
    a = await logged_in(open_page, alice, "alice")
    for page in (t, a):
        await page.select_class(live.class_id)
        await join(page)
    await expect(a.by("toggle-screen")).to_be_hidden()
    await expect(t.by("toggle-screen")).to_have_text("Share screen")

    await t.by("toggle-screen").click()
    await expect(t.by("toggle-screen")).to_have_text("Stop sharing")
    await expect(t.by("screen-tile")).to_have_attribute("data-mine", "true")

    # The teacher renegotiated, naming the new m-section "screen".
    async def screen_offered() -> bool:
        return len(t.sent("WEBRTC_OFFER")) == 2

    await wait_until(screen_offered, timeout=20)
    tracks = t.sent("WEBRTC_OFFER")[1]["tracks"]
    assert list(tracks.values()).count({"source": "screen"}) == 1, tracks
    assert len(tracks) == 4, tracks

    screen = a.by("screen-tile")
    await expect(screen).to_be_visible()
    await expect(screen).to_have_attribute("data-user-id", teacher.id)
    await expect(a.by("screen-name")).to_have_text(teacher.name)
    await expect(screen).to_have_attribute("data-playing", "true", timeout=20_000)
    await a.page.wait_for_function(f"({SCREEN_FRAMES})() > 2", timeout=20_000)
    await until_received(a, teacher.id, lambda s: s["framesDecoded"] > 2, source="screen")
    assert {"userId": teacher.id, "active": True} in a.received("SCREEN_SHARE")
    # The teacher's camera stays large beside the screen.
    await expect(a.by("stage").locator('[data-testid="remote-tile"]')).to_have_count(1)

    # A late joiner learns of the share from ROOM_JOINED and sees it too.
    b = await logged_in(open_page, bob, "bob")
    await b.select_class(live.class_id)
    await join(b)
    (joined,) = b.received("ROOM_JOINED")
    assert joined["screenShare"] == teacher.id
    await expect(b.by("screen-tile")).to_have_attribute("data-playing", "true", timeout=20_000)
    await b.page.wait_for_function(f"({SCREEN_FRAMES})() > 2", timeout=20_000)

    await t.by("toggle-screen").click()
    await expect(t.by("toggle-screen")).to_have_text("Share screen")
    for page in (t, a, b):
        await expect(page.by("screen-tile")).to_be_hidden()
    for page in (a, b):
        assert page.received("SCREEN_SHARE")[-1] == {"userId": teacher.id, "active": False}
    for page in (t, a, b):
        await expect(page.messages.locator('[data-kind="error"]')).to_have_count(0)


async def test_a_student_shares_where_the_class_allows_it_and_the_teachers_share_takes_over(
    api: ClassroomApi, open_page: PageFactory
) -> None:
    live = await enrolled_class(api, "Show and tell", "Alice Student")
    teacher, (alice,) = live.teacher, live.students
    await api.call(
        "PUT",
        f"/class/{live.class_id}/settings",
        token=teacher.token,
        body={"allowStudentScreenShare": True},
    )
    t = await logged_in(open_page, teacher, "teacher")
    a = await logged_in(open_page, alice, "alice")
    for page in (t, a):
        await page.select_class(live.class_id)
        await join(page)

    await a.by("toggle-screen").click()
    await expect(a.by("toggle-screen")).to_have_text("Stop sharing")
    await expect(t.by("screen-tile")).to_have_attribute("data-user-id", alice.id)
    await expect(t.by("screen-name")).to_have_text(alice.name)
    await t.page.wait_for_function(f"({SCREEN_FRAMES})() > 2", timeout=20_000)

    # The teacher shares too: the server hands the share over, Alice's page stops hers.
    await t.by("toggle-screen").click()
    await expect(a.by("toggle-screen")).to_have_text("Share screen")
    await expect(a.messages).to_contain_text("Your screen share stopped")
    await expect(a.by("screen-tile")).to_have_attribute("data-user-id", teacher.id)
    await a.page.wait_for_function(f"({SCREEN_FRAMES})() > 2", timeout=20_000)
    await expect(t.by("screen-tile")).to_have_attribute("data-mine", "true")

    # Alice renegotiated: her screen's m-section went inactive, no longer named "screen".
    async def stopped_offered() -> bool:
        return len(a.sent("WEBRTC_OFFER")) == 3

    await wait_until(stopped_offered, timeout=20)
    offers = a.sent("WEBRTC_OFFER")
    assert [list(o["tracks"].values()).count({"source": "screen"}) for o in offers] == [0, 1, 0]
    assert " inactive" not in offers[1]["offer"]["sdp"]
    assert "a=inactive" in offers[2]["offer"]["sdp"].split("m=video")[-1]
    for page in (t, a):
        await expect(page.messages.locator('[data-kind="error"]')).to_have_count(0)
