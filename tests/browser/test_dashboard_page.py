"""The teacher's participation dashboard (/static/dashboard.html) in real Chromium against a
real server: the activity of a session made over the class WebSocket (chat, hands, a poll,
moderation, a teacher's mark; one student with a microphone, so with presence) shows in the table
exactly as ``GET .../participation`` has it, with one timeline marker per chat message, raised
hand and moderation decision and one bar per presence interval; the page follows the live
session, turns final when it ends and then stops asking; the CSV and JSON exports are what
the API serves; names and questions are shown as text. Signed out, the page asks to log in
(into the classroom page's token) and shows nothing to a student."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Download, Locator, Request, expect

from scripts.synthpeer.api_client import Account, ClassroomApi, ClassSocket
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack
from scripts.synthpeer.peer import SyntheticPeer
from sfu import MediaConfig
from tests.browser.accounts import PASSWORD, TEACHER_NAME, enrolled_class, logged_in
from tests.browser.conftest import PageFactory
from tests.browser.pages import ClassroomPage

pytestmark = pytest.mark.browser

DASHBOARD = "/static/dashboard.html"
HOSTILE_NAME = "Bob <b>Bold</b>"
QUESTION = "Which <i>organelle</i> makes ATP?"
OPTIONS = ["Nucleus", "Mitochondrion", "Ribosome"]
LIVE_WAIT_MS = 10_000  # the page reloads a live session every 3 s


def percent(ratio: float) -> str:
    """What the page writes for a presence ratio (web/js/dashboard_format.js `percent`)."""
    tenths = math.floor(ratio * 1000 + 0.5)
    return f"{tenths // 10}.{tenths % 10}%"


def audio_only(config: MediaConfig) -> MediaClient:
    """A microphone (a tone with audio levels: talk time) and no camera: light on two cores."""
    return MediaClient(config, audio=ToneAudioTrack(), decode="none")


def mine(user_id: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    """A `where` for replies about `user_id` with `fields`."""
    return lambda data: (
        data.get("userId") == user_id
        and all(data.get(key) == value for key, value in fields.items())
    )


async def chat(socket: ClassSocket, user: Account, text: str) -> None:
    await socket.request("CHAT", {"text": text}, "CHAT", where=mine(user.id, text=text))


async def hand(socket: ClassSocket, user: Account, raised: bool) -> None:
    await socket.request("HAND", {"raised": raised}, "HAND", where=mine(user.id, raised=raised))


def row(page: ClassroomPage, student_id: str) -> Locator:
    return page.page.locator(f'[data-testid="participation-row"][data-student-id="{student_id}"]')


def marks(page: ClassroomPage, student_id: str, mark: str) -> Locator:
    timeline = f'[data-testid="timeline"][data-student-id="{student_id}"]'
    return page.page.locator(f'{timeline} [data-mark="{mark}"]')


async def expect_activity(page: ClassroomPage, student: dict[str, Any]) -> None:
    """The counts of `student` (a ``/participation`` row) in the table and on the timeline."""
    cells = row(page, student["studentId"])
    await expect(cells.get_by_test_id("cell-chat")).to_have_text(str(student["chatMessages"]))
    await expect(cells.get_by_test_id("cell-hands")).to_have_text(str(student["handsRaised"]))
    await expect(cells.get_by_test_id("cell-polls")).to_have_text(str(student["pollVotes"]))
    actions = [item["action"] for item in student["moderation"]]
    await expect(cells.get_by_test_id("moderation-action")).to_have_count(len(actions))
    for kind, times in (("chat", student["chatAt"]), ("hand", student["handsAt"])):
        await expect(marks(page, student["studentId"], kind)).to_have_count(len(times))
        shown = await marks(page, student["studentId"], kind).evaluate_all(
            "nodes => nodes.map((node) => node.getAttribute('data-at'))"
        )
        assert shown == times
    await expect(marks(page, student["studentId"], "moderation")).to_have_count(len(actions))


async def expect_final_row(page: ClassroomPage, student: dict[str, Any]) -> None:
    """Everything of `student` (a final ``/participation`` row) as the table shows it."""
    await expect_activity(page, student)
    cells = row(page, student["studentId"])
    await expect(cells.get_by_test_id("cell-name").locator(".name")).to_have_text(student["name"])
    status = cells.get_by_test_id("cell-status")
    await expect(status).to_have_attribute("data-status", student["status"])
    await expect(status).to_have_attribute("data-source", student["source"])
    presence = cells.get_by_test_id("cell-presence")
    await expect(presence).to_have_text(percent(student["presenceRatio"]))
    ratio = await presence.get_attribute("data-value")
    assert ratio is not None and float(ratio) == student["presenceRatio"]
    score = cells.get_by_test_id("cell-score")
    await expect(score).to_have_text(f"{student['activityScore']:.1f}")
    for testid, key in (
        ("cell-camera", "cameraSeconds"),
        ("cell-mic", "micSeconds"),
        ("cell-talk", "talkSeconds"),
    ):
        shown = await cells.get_by_test_id(testid).get_attribute("data-value")
        assert shown is not None and float(shown) == student[key], (testid, shown, student[key])
    for testid, key in (("cell-first-join", "firstJoin"), ("cell-last-leave", "lastLeave")):
        cell = cells.get_by_test_id(testid)
        if student[key] is None:
            await expect(cell).to_have_text("—")
        else:
            await expect(cell.locator("time")).to_have_attribute("datetime", student[key])
    bars = marks(page, student["studentId"], "presence")
    await expect(bars).to_have_count(len(student["intervals"]))
    spans = await bars.evaluate_all(
        "nodes => nodes.map((n) => [n.getAttribute('data-start'), n.getAttribute('data-end')])"
    )
    assert spans == student["intervals"]
    for mark, key in (("camera", "cameraSpans"), ("talking", "talkSpans")):
        bands = marks(page, student["studentId"], mark)
        await expect(bands).to_have_count(len(student[key]))
        shown = await bands.evaluate_all(
            "nodes => nodes.map((n) => [n.getAttribute('data-start'), n.getAttribute('data-end')])"
        )
        assert shown == student[key], (mark, shown, student[key])


async def downloaded(page: ClassroomPage, button: str) -> tuple[Download, str]:
    async with page.page.expect_download() as info:
        await page.by(button).click()
    download = await info.value
    content = await asyncio.to_thread(Path(await download.path()).read_bytes)
    return download, content.decode()


async def test_the_dashboard_shows_a_live_session_then_its_final_participation(
    api: ClassroomApi, open_page: PageFactory
) -> None:
    live = await enrolled_class(api, "Biology", "Ann Student", HOSTILE_NAME)
    teacher, (ann, bob), class_id = live.teacher, live.students, live.class_id
    sessions = await api.call("GET", f"/class/{class_id}/sessions", token=teacher.token)
    session_id = sessions[0]["sessionId"]
    path = f"/class/{class_id}/sessions/{session_id}/participation"

    ann_peer = SyntheticPeer(api, ann, audio_only, class_id=class_id)
    teacher_socket = await api.open_socket(teacher.token, class_id)
    bob_socket = await api.open_socket(bob.token, class_id)
    try:
        # The room: the teacher and Bob over the socket only, Ann with her microphone (so
        # she has presence and talk time; Bob, never connected, has none).
        await teacher_socket.request("JOIN_ROOM", {}, "ROOM_JOINED")
        await bob_socket.request("JOIN_ROOM", {}, "ROOM_JOINED")
        await ann_peer.join()
        await ann_peer.wait_connected()
        ann_socket = ann_peer.socket
        assert ann_socket is not None

        await chat(ann_socket, ann, "Is this on the test?")
        await chat(ann_socket, ann, "<img src=x onerror=alert(1)>")
        await chat(bob_socket, bob, "Hello")
        await hand(ann_socket, ann, True)
        await hand(ann_socket, ann, False)
        await hand(ann_socket, ann, True)
        await hand(bob_socket, bob, True)
        poll = await teacher_socket.request(
            "POLL_START", {"question": QUESTION, "options": OPTIONS}, "POLL_STARTED"
        )
        for socket, option in ((ann_socket, 1), (bob_socket, 2)):
            await socket.request(
                "POLL_VOTE", {"pollId": poll["pollId"], "option": option}, "POLL_VOTED"
            )
        await teacher_socket.request("POLL_END", {"pollId": poll["pollId"]}, "POLL_RESULT")
        await teacher_socket.request(
            "ATTENDANCE_MARKED",
            {"studentId": bob.id, "status": "present"},
            "ATTENDANCE_MARKED",
            where=lambda data: data.get("studentId") == bob.id,
        )

        # Signed in on the classroom page, the teacher is signed in on the dashboard too.
        t = await logged_in(open_page, teacher, "teacher")
        loads: list[str] = []

        def seen(request: Request) -> None:
            if request.url.split("?")[0].endswith(path):
                loads.append(request.url)

        t.page.on("request", seen)
        await t.page.goto(DASHBOARD)
        await expect(t.by("whoami-name")).to_contain_text(TEACHER_NAME)
        await expect(t.by("class-select")).to_have_value(class_id)
        await expect(t.by("session-select")).to_have_value(session_id)
        await expect(t.by("session-state")).to_have_attribute("data-state", "live")
        await expect(t.page.get_by_test_id("participation-row")).to_have_count(2)

        report = await api.call("GET", path, token=teacher.token)
        by_id = {student["studentId"]: student for student in report["students"]}
        assert (by_id[ann.id]["chatMessages"], by_id[ann.id]["handsRaised"]) == (2, 2)
        assert (by_id[bob.id]["chatMessages"], by_id[bob.id]["handsRaised"]) == (1, 1)
        for student in report["students"]:
            await expect_activity(t, student)
        await expect(t.by("score-formula")).to_have_text(report["scoreFormula"])

        # Text stays text: the name and the question as typed, no element made of them.
        bob_name = row(t, bob.id).get_by_test_id("cell-name").locator(".name")
        await expect(bob_name).to_have_text(HOSTILE_NAME)
        await expect(t.page.locator("main b, main i, main img")).to_have_count(0)
        await expect(row(t, bob.id).get_by_test_id("override")).to_contain_text(
            f"override by {TEACHER_NAME} at "
        )
        shown_poll = t.page.locator(f'[data-testid="poll"][data-poll-id="{poll["pollId"]}"]')
        await expect(shown_poll.get_by_test_id("poll-question")).to_have_text(QUESTION)
        await expect(shown_poll.get_by_test_id("poll-option-text")).to_have_text(OPTIONS)
        await expect(shown_poll.get_by_test_id("poll-count")).to_have_text(
            [str(n) for n in report["polls"][0]["counts"]]
        )
        assert report["polls"][0]["counts"] == [0, 1, 1]

        # Live: one more message reaches the open page without a reload.
        await chat(bob_socket, bob, "One more thing")
        bob_chat = row(t, bob.id).get_by_test_id("cell-chat")
        await expect(bob_chat).to_have_text("2", timeout=LIVE_WAIT_MS)
        await expect(marks(t, bob.id, "chat")).to_have_count(2)
        # and so does the teacher's decision (after a few seconds of Ann's microphone).
        await teacher_socket.send("MODERATE", {"userId": ann.id, "action": "mute"})
        await ann_socket.next("MODERATED")
        ann_actions = row(t, ann.id).get_by_test_id("moderation-action")
        await expect(ann_actions).to_have_count(1, timeout=LIVE_WAIT_MS)
        await expect(ann_actions).to_contain_text(f"muted by {TEACHER_NAME} at ")
        await expect(marks(t, ann.id, "moderation")).to_have_attribute("data-action", "mute")

        # The end: the page says final, shows the stored figures, and stops asking.
        await api.end_session(teacher, class_id)
        await expect(t.by("session-state")).to_have_attribute(
            "data-state", "final", timeout=LIVE_WAIT_MS
        )
        await expect(t.by("session-state")).to_contain_text("Final")
        final = await api.call("GET", path, token=teacher.token)
        assert final["isActive"] is False
        assert len(final["students"]) == 2
        for student in final["students"]:
            await expect_final_row(t, student)
        ann_final = next(s for s in final["students"] if s["studentId"] == ann.id)
        assert ann_final["intervals"] and ann_final["presenceRatio"] > 0
        assert ann_final["talkSpans"] and not ann_final["cameraSpans"]  # a tone, no camera
        assert [m["action"] for m in ann_final["moderation"]] == ["mute"]
        assert ann_final["activityScore"] > 0
        for picker in ("class-select", "session-select"):
            chosen = t.by(picker).locator("option:checked")
            await expect(chosen).not_to_contain_text("(live)")
        asked = len(loads)
        await asyncio.sleep(3.5)
        assert len(loads) == asked, "the page kept loading a session that has ended"

        csv_download, csv_text = await downloaded(t, "export-csv")
        assert csv_download.suggested_filename == f"participation-{class_id}-{session_id}.csv"
        status, content_type, served = await api.text(f"{path}.csv", token=teacher.token)
        assert (status, content_type) == (200, "text/csv")
        assert csv_text == served
        await expect(t.by("download-link")).to_have_attribute(
            "download", csv_download.suggested_filename
        )
        json_download, json_text = await downloaded(t, "export-json")
        assert json_download.suggested_filename == f"participation-{class_id}-{session_id}.json"
        assert json.loads(json_text) == final

        await expect(t.messages.locator('[data-kind="error"]')).to_have_count(0)
        await t.screenshot("dashboard")
    finally:
        await ann_peer.close()
        for socket in (teacher_socket, bob_socket):
            await socket.close()


async def test_signed_out_the_dashboard_asks_to_log_in_and_is_for_teachers_only(
    api: ClassroomApi, open_page: PageFactory
) -> None:
    live = await enrolled_class(api, "Chemistry", "Cleo Student", start=False)
    page = await open_page("visitor")
    await page.page.goto(DASHBOARD)
    await expect(page.by("auth-section")).to_be_visible()
    await expect(page.by("app")).to_be_hidden()

    await page.log_in(live.teacher.email, PASSWORD)
    await expect(page.by("whoami-name")).to_contain_text(TEACHER_NAME)
    await expect(page.by("class-select")).to_have_value(live.class_id)
    await expect(page.by("session-state")).to_have_attribute("data-state", "none")
    await expect(page.by("export-csv")).to_be_disabled()
    # The token is the classroom page's: there, the teacher is signed in already.
    await page.page.goto("/static/classroom.html")
    await expect(page.by("whoami-name")).to_have_text(TEACHER_NAME)

    await page.page.goto(DASHBOARD)
    await page.by("logout").click()
    await expect(page.by("auth-section")).to_be_visible()
    await page.log_in(live.students[0].email, PASSWORD)
    await expect(page.messages).to_contain_text("The participation dashboard is for teachers.")
    await expect(page.by("app")).to_be_hidden()
