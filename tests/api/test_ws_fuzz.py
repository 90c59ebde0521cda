"""WebSocket fuzz over a real socket to a real server: every field of every event the
router knows gets every hostile value (wrong types, huge, deep and odd strings, operator
objects, lone surrogates, NaN), then seeded random frames, text and binary. Each frame must
be answered with a valid answer or an ``ERROR`` whose message is one docs/protocol.md
lists, never ``Internal server error``; nothing is logged at WARNING or above; and the
sockets and the room work afterwards.

Every fuzz frame is followed by a probe, an unknown event named after the frame's number,
whose ``ERROR Unknown event`` marks where that frame's answers end."""

from __future__ import annotations

import copy
import json
import logging
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from api.config import Settings
from api.errors import INTERNAL_ERROR, WS_INVALID_FORMAT, WS_UNKNOWN_EVENT, InvalidRequest
from api.validation import MAX_JSON_DEPTH
from api.ws.events import EVENTS
from api.ws.media_payloads import parse_tracks
from scripts.synthpeer.api_client import ClassSocket

from .conftest import RunningServer, ServerFactory

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
SEED = 17
RANDOM_FRAMES = 400
"""Seeded random frames per socket, after the systematic ones."""
HUGE = "x" * 60_000
"""Within WS_MAX_FRAME_BYTES (64 KiB) with the rest of the frame: read, not refused."""
DEEP: object = "bottom"
for _ in range(MAX_JSON_DEPTH - 3):
    DEEP = [DEEP]
RAW = "\x00RAW\x00"
"""Stands for a value JSON cannot say from Python; replaced in the frame's text."""
RAW_VALUES = ["NaN", "-Infinity", "1e999", '"\\ud800"', '"\\udfff x"']
HOSTILE: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**64,
    1.5,
    -0.0,
    "",
    " \t\u3000",
    HUGE,
    "\x00\x01\x7f",
    "\u202eevil\u202c",
    "\N{TRIANGULAR RULER}\ufeff",
    "%s%n{0}{data}",
    "'; DROP TABLE users; --",
    "../../etc/passwd",
    [],
    [1, "a", None, {}],
    {},
    {"$gt": ""},
    {"__proto__": {"admin": True}},
    DEEP,
    *([RAW] * len(RAW_VALUES)),
]
ODD_KEYS = ["", " ", HUGE[:5000], "\x00", "\u202e", "$where", "__proto__", "constructor"]
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
CANDIDATE = "candidate:1 1 udp 2122260223 127.0.0.1 9 typ host"
STATE_CHANGING = ("JOIN_ROOM", "LEAVE_ROOM", "DONE", "RECORDING_START", "RECORDING_STOP")
"""They read no data: any object (or null) is valid and changes the room, so they get
other values during the fuzz and an object once, at the end."""


SILENT_WHEN_VALID = ("MEDIA_STATE", "SUBSCRIPTION", "WEBRTC_ICE_CANDIDATE", "WEBRTC_ANSWER")
"""Events whose valid form the sender hears nothing of (the others in the room may)."""


def _templates(ids: dict[str, str]) -> dict[str, dict[str, Any]]:
    """A valid ``data`` per event: each of its fields is then made hostile in turn."""
    return {
        "ATTENDANCE_MARKED": {"studentId": ids["student"], "status": "present"},
        "WEBRTC_OFFER": {
            "pc": "publish",
            "offer": {"type": "offer", "sdp": SDP},
            "tracks": {"0": {"source": "camera", "layer": "high"}},
        },
        "WEBRTC_ANSWER": {"pc": "subscribe", "answer": {"type": "answer", "sdp": SDP}},
        "WEBRTC_ICE_CANDIDATE": {
            "pc": "publish",
            "candidate": {"candidate": CANDIDATE, "sdpMid": "0", "sdpMLineIndex": 0},
        },
        "MEDIA_STATE": {"audio": True, "video": False},
        "SUBSCRIPTION": {
            ids["teacher"]: {
                "camera": "low",
                "screen": "on",
                "microphone": "off",
                "fps": {"camera": 15, "screen": None},
            }
        },
    }


def _documented() -> list[re.Pattern[str]]:
    """Every backquoted text of docs/protocol.md as a pattern, ``<...>`` standing for any
    text; the media plane's refusals may add their documented ``: <reason>``."""
    prose = re.sub(r"^```.*?^```", "", PROTOCOL.read_text(), flags=re.M | re.S)
    text = re.sub(r"\s+", " ", prose)
    patterns = []
    for span in set(re.findall(r"`([^`]+)`", text)):
        if len(re.sub(r"<[^>]*>", "", span)) < 8:
            continue
        body = ".+".join(re.escape(part) for part in re.split(r"<[^>]*>", span))
        if span.startswith(("Invalid SDP:", "Invalid ICE candidate:")):
            body += "(: .+)?"
        patterns.append(re.compile(body))
    return patterns


def _paths(value: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))


def _set(data: Any, path: tuple[str, ...], value: Any) -> Any:
    if not path:
        return value
    changed = copy.deepcopy(data)
    target = changed
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return changed


_DELETE = object()


def _frame(event: Any, data: Any, raw: str | None = None) -> str:
    text = json.dumps({"event": event, "data": data}, allow_nan=True)
    return text.replace(json.dumps(RAW), raw) if raw is not None else text


def _systematic(events: list[str], templates: dict[str, dict[str, Any]]) -> Iterator[str]:
    """Every event with each field (``data`` itself included) replaced by each hostile
    value or left out, each object's keys replaced by odd ones, and hostile event names."""
    for event in events:
        template = templates.get(event, {})
        for path in _paths(template):
            raws = iter(RAW_VALUES)
            for value in [*HOSTILE, _DELETE]:
                if _unsent(event, path, value):
                    continue
                raw = next(raws) if value is RAW else None
                yield _frame(event, _set(template, path, value), raw)
            target = _at(template, path)
            if isinstance(target, dict) and target:
                first = next(iter(target))
                for odd in ODD_KEYS:
                    renamed = {odd if key == first else key: v for key, v in target.items()}
                    yield _frame(event, _set(template, path, renamed))
    raws = iter(RAW_VALUES)
    for value in [*HOSTILE, *ODD_KEYS, "join_room", "JOIN_ROOM ", "ERROR", "ROOM_JOINED"]:
        yield _frame(value, {}, next(raws) if value is RAW else None)
    yield from ("", "{", "[]", "null", '"JOIN_ROOM"', '{"data": {}}', '{"event": "DONE"} x')
    yield '{"event": "JOIN_ROOM", "event": "DONE", "data": 1}'


def _unsent(event: str, path: tuple[str, ...], value: Any) -> bool:
    """``data`` itself is never left out, and is no object for the events that change the
    room (`STATE_CHANGING`)."""
    if path:
        return False
    return value is _DELETE or (event in STATE_CHANGING and _reads_as_data(value))


def _reads_as_data(value: Any) -> bool:
    """A ``data`` the router hands on: an object, or ``null`` read as ``{}``."""
    return value is None or isinstance(value, dict)


def _at(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 6 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([rng.randint(-(2**70), 2**70), rng.uniform(-1e300, 1e300)])
    if kind in (3, 4):
        return _random_text(rng, rng.choice([0, 1, 8, 64, 2000]))
    if kind in (5, 6):
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {
        _random_text(rng, rng.randrange(12)): _random_value(rng, depth + 1)
        for _ in range(rng.randrange(5))
    }


def _random_text(rng: random.Random, length: int) -> str:
    # Any code point but the surrogates (UTF-8 cannot carry them; RAW_VALUES send escapes).
    alphabet = [*range(0x20, 0x7F), *range(0, 0x20), 0x85, 0xA0, 0x2028, 0xFEFF, 0x1F4D0]
    chars = [rng.choice(alphabet) if rng.random() < 0.8 else rng.randrange(0xE000, 0x10FFFF)]
    chars += [rng.choice(alphabet) for _ in range(max(0, length - 1))]
    return "".join(map(chr, chars))[:length]


def _random_frames(rng: random.Random, events: list[str]) -> Iterator[str | bytes]:
    for _ in range(RANDOM_FRAMES):
        roll = rng.random()
        if roll < 0.1:
            yield rng.randbytes(rng.randrange(1, 300))
        elif roll < 0.2:
            yield _random_text(rng, rng.randrange(1, 300))
        elif roll < 0.3:
            yield json.dumps(_random_value(rng))
        else:
            event = rng.choice(events) if roll < 0.9 else _random_text(rng, 10)
            data = _random_value(rng)
            if event in STATE_CHANGING and _reads_as_data(data):
                data = [data]
            yield _frame(event, data)


def _event_of(frame: str | bytes) -> object:
    try:
        decoded = json.loads(frame)
    except ValueError:
        return None
    return decoded.get("event") if isinstance(decoded, dict) else None


@dataclass
class Fuzzer:
    """One socket under fuzz and what it was answered."""

    name: str
    socket: ClassSocket
    documented: list[re.Pattern[str]]
    sent: int = 0
    silent: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    answers: dict[str, int] = field(default_factory=dict)

    async def send(self, frame: str | bytes) -> None:
        """Send `frame` and its probe; check everything that arrived up to the probe's
        answer."""
        self.sent += 1
        probe = f"FUZZ_PROBE_{self.sent}"
        if isinstance(frame, bytes):
            await self.socket.ws.send_bytes(frame)
        else:
            await self.socket.send_raw(frame)
        await self.socket.send(probe)
        error = await self.socket.error_for(probe)
        assert error["message"] == WS_UNKNOWN_EVENT, error
        if not self.socket.received:
            # Accepted with no answer to the sender: only what the protocol answers so.
            assert _event_of(frame) in SILENT_WHEN_VALID, repr(frame)[:200]
            self.silent += 1
        self.check(self.socket.received, frame)
        self.socket.received.clear()

    def check(self, frames: list[dict[str, Any]], sent: str | bytes) -> None:
        """Every ``ERROR`` among `frames` (the answers to `sent`) is a documented one."""
        shown = repr(sent)[:200]
        for frame in frames:
            name, data = frame["event"], frame["data"]
            if name != "ERROR":
                self.answers[name] = self.answers.get(name, 0) + 1
                continue
            message = data["message"]
            assert message != INTERNAL_ERROR, (self.name, shown)
            # It names the event it answers, or none (a frame whose event could not be read).
            assert data["event"] in (None, _event_of(sent)), (data, shown)
            assert any(p.fullmatch(message) for p in self.documented), (message, shown)
            assert not re.search(r"Traceback|Error\(|object at 0x", message), (message, shown)
            self.errors[message] = self.errors.get(message, 0) + 1


@pytest.fixture
async def fuzzed(start_server: ServerFactory, settings: Settings) -> RunningServer:
    # The fuzz sends thousands of events at once: the per-socket rate is tested elsewhere
    # (test_ws_limits.py).
    return await start_server(
        replace(settings, ws_events_per_second=100_000.0, ws_event_burst=1_000_000)
    )


async def test_every_field_of_every_event_fuzzed_is_answered_and_the_room_still_works(
    fuzzed: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = fuzzed
    room = await server.classroom(students=1)
    student = room.students[0]
    await server.api.start_session(room.teacher, room.class_id)
    events = server.app[EVENTS].events
    ids = {"student": student.id, "teacher": room.teacher.id}
    templates = _templates(ids)
    documented = _documented()
    teacher_ws = await server.api.open_socket(room.teacher.token, room.class_id)
    student_ws = await server.api.open_socket(student.token, room.class_id)
    for ws in (teacher_ws, student_ws):
        await ws.request("JOIN_ROOM", {}, "ROOM_JOINED")
    await teacher_ws.quiet(0.3)
    await student_ws.quiet(0.0)
    rng = random.Random(SEED)
    fuzzers = [
        Fuzzer("teacher", teacher_ws, documented),
        Fuzzer("student", student_ws, documented),
    ]
    with caplog.at_level(logging.WARNING):
        for fuzzer in fuzzers:
            for frame in _systematic(events, templates):
                await fuzzer.send(frame)
            for raw in _random_frames(rng, events):
                await fuzzer.send(raw)
            # The other socket heard broadcasts meanwhile (MEDIA_STATE, ATTENDANCE_MARKED...).
            other = fuzzers[1] if fuzzer is fuzzers[0] else fuzzers[0]
            other.check(await other.socket.quiet(0.0), "(broadcast)")
        await _room_still_works(teacher_ws, student_ws, room.teacher.id)
        for fuzzer in fuzzers:
            fuzzer.check(await fuzzer.socket.quiet(0.2), "(final)")
    await teacher_ws.close()
    await student_ws.close()
    sent = sum(f.sent for f in fuzzers)
    silent = sum(f.silent for f in fuzzers)
    refusals = {m for f in fuzzers for m in f.errors}
    print(f"\n{sent} fuzz frames: {silent} accepted silently, {len(refusals)} distinct refusals")
    assert all(f.errors.get(WS_INVALID_FORMAT) for f in fuzzers)
    # The handlers were reached past the frame checks: their own refusals were answered.
    assert {
        "Invalid payload: audio and video must be booleans",
        "Invalid payload: need studentId and status 'present' or 'absent'",
        "Forbidden, teacher event only",
        "Invalid payload: tracks.0.layer must be 'high' or 'low'",
        "Unexpected ICE candidate: that connection has not been negotiated yet",
    } <= refusals
    assert any(m.startswith("Invalid SDP: publish offer could not be applied: ") for m in refusals)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert not [r for r in caplog.records if r.exc_info]


async def _room_still_works(teacher: ClassSocket, student: ClassSocket, teacher_id: str) -> None:
    await teacher.send("MEDIA_STATE", {"audio": False, "video": True})
    heard = await student.next("MEDIA_STATE", where=lambda d: d.get("userId") == teacher_id)
    assert (heard["audio"], heard["video"]) == (False, True)
    roster = await teacher.request("ROSTER", {}, "ROSTER")
    assert roster
    mine = await student.request("MY_ATTENDANCE", {}, "MY_ATTENDANCE")
    assert mine["status"]
    # The events that change the room, with junk in data (which they do not read).
    junk = {"junk": HUGE[:100], "$gt": ""}
    await teacher.request("RECORDING_START", junk, "RECORDING")
    await teacher.request("RECORDING_STOP", junk, "RECORDING")
    await student.send("LEAVE_ROOM", junk)
    await teacher.next("PEER_LEFT")
    await student.request("JOIN_ROOM", junk, "ROOM_JOINED")
    done = await teacher.request("DONE", junk, "DONE")
    assert done["message"] == "Attendance persisted"


def test_a_track_layer_of_any_json_type_is_refused_in_words() -> None:
    # Found by the fuzz: a list or object layer raised TypeError (unhashable), an
    # Internal server error.
    layers: list[object] = [[], {}, ["high"], 1, True]
    for layer in layers:
        data = {"tracks": {"0": {"source": "camera", "layer": layer}}}
        with pytest.raises(InvalidRequest) as refused:
            parse_tracks(data)
        assert refused.value.message == "Invalid payload: tracks.0.layer must be 'high' or 'low'"
