"""A classroom client built on stock aiortc, as someone outside the project would write it.

It uses nothing of this repository: plain `aiortc.RTCPeerConnection` (no `sfu`, no
adapter, no synthetic peer) and its own few lines of the public protocol, REST to sign
up, log in and start a session, and the class WebSocket for ``JOIN_ROOM`` and the
``WEBRTC_OFFER`` / ``WEBRTC_ANSWER`` exchanges. Tests use it to show that the server's SDP
is taken as is by a standard aiortc client: it publishes a real camera-like and
microphone-like track (encoded by aiortc) and decodes what the server forwards.

What it reads of its own connections goes through aiortc's public API only
(`RTCIceTransport.getRemoteCandidates`, `RTCIceGatherer.getLocalCandidates`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import math
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
from aiortc import (
    AudioStreamTrack,
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError

PASSWORD = "stock-client-pass"


class StockFailure(Exception):
    """The server refused a call or sent ``ERROR``; the message is the server's."""


@dataclass(frozen=True)
class StockAccount:
    """A signed-up, logged-in user."""

    id: str
    email: str
    role: str
    token: str


class StockRest:
    """The REST calls a client needs to get into a live class."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session

    async def call(self, method: str, path: str, body: Any = None, token: str = "") -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.request(
            method, self.base_url + path, json=body, headers=headers
        ) as response:
            envelope = await response.json(content_type=None)
        if not envelope.get("success"):
            raise StockFailure(f"{method} {path}: {response.status} {envelope.get('error')}")
        return envelope["data"]

    async def sign_up(self, name: str, email: str, role: str) -> StockAccount:
        """``POST /auth/signup`` then ``POST /auth/login``."""
        body = {"name": name, "email": email, "password": PASSWORD, "role": role}
        user = await self.call("POST", "/auth/signup", body)
        login = await self.call("POST", "/auth/login", {"email": email, "password": PASSWORD})
        return StockAccount(str(user["_id"]), email, role, str(login["token"]))

    async def live_class(self, teacher: StockAccount, students: list[StockAccount]) -> str:
        """As the teacher: create a class, enrol `students`, start its session."""
        cls = await self.call("POST", "/class", {"className": "Stock aiortc"}, teacher.token)
        class_id = str(cls["_id"])
        for student in students:
            path = f"/class/{class_id}/add-student"
            await self.call("POST", path, {"studentId": student.id}, teacher.token)
        await self.call("POST", "/attendance/start", {"classId": class_id}, teacher.token)
        return class_id


class ToneAudioTrack(AudioStreamTrack):
    """A microphone that hears a 400 Hz tone: aiortc's own track sends digital silence,
    which the server does not forward."""

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()
        assert isinstance(frame, av.AudioFrame)
        period = frame.sample_rate // 400
        wave = [round(8000 * math.sin(2 * math.pi * i / period)) for i in range(period)]
        samples = (wave * (frame.samples // period + 1))[: frame.samples]
        frame.planes[0].update(struct.pack(f"<{frame.samples}h", *samples))
        return frame


class PatternVideoTrack(VideoStreamTrack):
    """A small camera: 160x120 frames at aiortc's 30 fps whose brightness changes."""

    def __init__(self) -> None:
        super().__init__()
        self._count = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(160, 120, "yuv420p")
        self._count += 1
        for plane, value in zip(frame.planes, ((self._count * 4) % 256, 128, 128), strict=True):
            plane.update(bytes([value]) * plane.buffer_size)
        frame.pts = pts
        frame.time_base = fractions.Fraction(time_base)
        return frame


def server_candidates(sdp: str) -> set[tuple[str, int, str]]:
    """``(address, port, type)`` of every ``a=candidate`` line of an SDP."""
    found = set()
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            bits = line.split()
            found.add((bits[4], int(bits[5]), bits[7]))
    return found


def _track_streams(sdp: str) -> dict[str, str]:
    """msid track id -> msid stream id, for every m-section that has an ``a=msid``."""
    tracks = {}
    for line in sdp.splitlines():
        if line.startswith("a=msid:"):
            stream, _, track = line[len("a=msid:") :].partition(" ")
            tracks[track.strip()] = stream
    return tracks


@dataclass
class Connection:
    """One of the client's two peer connections and what it learnt from the server."""

    pc: RTCPeerConnection
    server_sdp: str = ""
    """The last SDP the server sent for this connection."""
    remote_after_sdp: set[tuple[str, int, str]] = field(default_factory=set)
    """The remote candidates aiortc knew right after applying `server_sdp` (before any
    check from the server could teach it peer-reflexive ones)."""

    def ice_transports(self) -> list[Any]:
        """The ICE transports the transceivers use (one when bundled)."""
        found: dict[int, Any] = {}
        for transceiver in self.pc.getTransceivers():
            ice = transceiver.receiver.transport.transport
            found[id(ice)] = ice
        return list(found.values())

    def remote_candidates(self) -> set[tuple[str, int, str]]:
        return {
            (c.ip, c.port, c.type)
            for ice in self.ice_transports()
            for c in ice.getRemoteCandidates()
        }

    def local_candidate_types(self) -> set[str]:
        return {
            c.type for ice in self.ice_transports() for c in ice.iceGatherer.getLocalCandidates()
        }


class StockClient:
    """One participant: the class WebSocket and two plain aiortc peer connections.

    `bundle_policy` is aiortc's. Its default, ``balanced``, does for a class of two, but
    aiortc 1.16 then leaves every video section after the first of a first offer on a
    transport it closes (whoever makes the offer), so a client joining a class with two
    cameras or more needs ``max-bundle``, the default here. `relay_only` sets
    ``iceTransportPolicy`` to relay, with the TURN servers from ``ROOM_JOINED``.
    """

    def __init__(
        self,
        rest: StockRest,
        account: StockAccount,
        class_id: str,
        *,
        bundle_policy: RTCBundlePolicy = RTCBundlePolicy.MAX_BUNDLE,
        relay_only: bool = False,
    ) -> None:
        self.rest = rest
        self.account = account
        self.class_id = class_id
        self.bundle_policy = bundle_policy
        self.relay_only = relay_only
        self.ice_servers: list[RTCIceServer] = []
        self.publish: Connection | None = None
        self.subscribe: Connection | None = None
        self.errors: list[dict[str, Any]] = []
        """The data of every ``ERROR`` the server sent."""
        self.failures: list[str] = []
        """What went wrong on this side (e.g. a subscribe offer aiortc refused)."""
        self.decoded: dict[str, Counter[str]] = {}
        """user id -> {"audio": frames, "video": frames} decoded from that user."""
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._labels: dict[str, str] = {}  # msid stream id -> user id
        self._track_streams: dict[str, str] = {}
        self._consumers: set[asyncio.Task[None]] = set()
        self._tracks: list[MediaStreamTrack] = []

    def _configuration(self) -> RTCConfiguration:
        # An explicit list, even empty: aiortc's default is a public STUN server.
        return RTCConfiguration(
            iceServers=self.ice_servers,
            bundlePolicy=self.bundle_policy,
            iceTransportPolicy=(
                RTCIceTransportPolicy.RELAY if self.relay_only else RTCIceTransportPolicy.ALL
            ),
        )

    async def join(self, timeout: float = 10.0) -> dict[str, Any]:
        """Open the class WebSocket and ``JOIN_ROOM``; returns ``ROOM_JOINED``'s data."""
        self._ws = await self.rest.session.ws_connect(
            self.rest.base_url + "/ws",
            params={"token": self.account.token, "classId": self.class_id},
        )
        self._reader = asyncio.create_task(self._read())
        return await self._request("JOIN_ROOM", {}, "ROOM_JOINED", timeout)

    def _take_ice_servers(self, joined: dict[str, Any]) -> None:
        self.ice_servers[:] = [
            RTCIceServer(
                urls=server["urls"],
                username=server.get("username"),
                credential=server.get("credential"),
            )
            for server in joined.get("iceServers", [])
        ]

    async def publish_media(self, timeout: float = 10.0) -> None:
        """Publish a microphone-like and a camera-like track (``WEBRTC_OFFER`` publish)."""
        pc = RTCPeerConnection(self._configuration())
        self.publish = Connection(pc)
        for track in (ToneAudioTrack(), PatternVideoTrack()):
            self._tracks.append(track)
            pc.addTransceiver(track, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        offer = {"type": "offer", "sdp": pc.localDescription.sdp}
        answer = await self._request(
            "WEBRTC_OFFER", {"pc": "publish", "offer": offer}, "WEBRTC_ANSWER", timeout
        )
        sdp = answer["answer"]["sdp"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        self.publish.server_sdp = sdp
        self.publish.remote_after_sdp = self.publish.remote_candidates()

    async def _answer_subscribe(self, data: dict[str, Any]) -> None:
        sdp = data["offer"]["sdp"]
        for stream_id, label in data.get("streams", {}).items():
            self._labels[stream_id] = label["userId"]
        self._track_streams.update(_track_streams(sdp))
        if self.subscribe is None:
            self.subscribe = Connection(RTCPeerConnection(self._configuration()))
            self.subscribe.pc.on("track", self._on_track)
        connection = self.subscribe
        await connection.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        connection.server_sdp = sdp
        connection.remote_after_sdp = connection.remote_candidates()
        await connection.pc.setLocalDescription(await connection.pc.createAnswer())
        answer = {"type": "answer", "sdp": connection.pc.localDescription.sdp}
        await self._send("WEBRTC_ANSWER", {"pc": "subscribe", "answer": answer})

    def _on_track(self, track: MediaStreamTrack) -> None:
        task = asyncio.create_task(self._consume(track))
        self._consumers.add(task)
        task.add_done_callback(self._consumers.discard)

    async def _consume(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()  # a decoded frame
                stream = self._track_streams.get(track.id, "")
                user = self._labels.get(stream, "?")
                self.decoded.setdefault(user, Counter())[track.kind] += 1

    async def _send(self, event: str, data: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send_str(json.dumps({"event": event, "data": data}))

    async def _request(
        self, event: str, data: dict[str, Any], reply: str, timeout: float
    ) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[reply] = future
        await self._send(event, data)
        async with asyncio.timeout(timeout):
            return await future

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(message.data)
            event, data = frame.get("event"), frame.get("data") or {}
            if event == "ROOM_JOINED":
                # Here, not in join(): the server's first subscribe offer may come right
                # behind ROOM_JOINED and is answered below before join() resumes, with
                # these servers (relay-only gathers nothing without them).
                self._take_ice_servers(data)
            if event == "ERROR":
                self.errors.append(data)
                for future in self._waiting.values():
                    if not future.done():
                        future.set_exception(StockFailure(str(data.get("message"))))
                self._waiting.clear()
            elif event == "WEBRTC_OFFER" and data.get("pc") == "subscribe":
                try:
                    await self._answer_subscribe(data)
                except Exception as error:  # keep reading; the test sees it in `failures`
                    self.failures.append(f"subscribe offer: {type(error).__name__}: {error}")
            elif event in self._waiting:
                future = self._waiting.pop(event)
                if not future.done():
                    future.set_result(data)

    def frames_from(self, user_id: str, kind: str) -> int:
        """Frames of `kind` decoded from `user_id` so far."""
        counts = self.decoded.get(user_id)
        return 0 if counts is None else counts[kind]

    def connected(self) -> bool:
        """Both connections are up."""
        connections = [c for c in (self.publish, self.subscribe) if c is not None]
        return len(connections) == 2 and all(
            c.pc.connectionState == "connected" for c in connections
        )

    async def close(self) -> None:
        for track in self._tracks:
            track.stop()
        for connection in (self.publish, self.subscribe):
            if connection is not None:
                await connection.pc.close()
        for task in list(self._consumers):
            task.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


def each_decoded_the_other(first: StockClient, second: StockClient, frames: int) -> bool:
    """Both clients decoded at least `frames` audio and video frames of the other."""
    return all(
        client.frames_from(other.account.id, kind) >= frames
        for client, other in ((first, second), (second, first))
        for kind in ("audio", "video")
    )
