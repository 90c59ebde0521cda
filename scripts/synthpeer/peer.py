"""A whole synthetic participant: the class WebSocket (docs/protocol.md) driving a `MediaClient`.

This is the one client the integration tests, the load test and the benchmarks share: it
uses only the public API, exactly like the browser page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from scripts.synthpeer.api_client import Account, ApiFailure, ClassroomApi, ClassSocket
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import EncodedClip
from scripts.synthpeer.subscription import LayersRecord, PageSubscription
from sfu import IceServer, MediaConfig
from sfu.config import TurnTransport

log = logging.getLogger(__name__)

MediaFactory = Callable[[MediaConfig], MediaClient]


MEDIA_EVENTS = frozenset({"WEBRTC_OFFER", "WEBRTC_ANSWER", "WEBRTC_ICE_CANDIDATE"})
"""The events whose ``ERROR`` means this peer's media negotiation failed."""


class MediaFailed(Exception):
    """The media connection did not come up; the message says why, for a person."""


def is_media_error(error: dict[str, Any]) -> bool:
    """An ``ERROR``'s data is about this peer's media: it answers a WebRTC event, or it
    answers none (the room's own report, e.g. "Media connection failed; ...")."""
    event = error.get("event")
    return event is None or event in MEDIA_EVENTS


def ice_servers_from(wire: list[dict[str, Any]]) -> tuple[IceServer, ...]:
    """``ROOM_JOINED.iceServers`` as aiortc-ready servers."""
    servers = []
    for entry in wire:
        urls = entry.get("urls")
        urls_tuple = (urls,) if isinstance(urls, str) else tuple(urls or ())
        servers.append(IceServer(urls_tuple, entry.get("username"), entry.get("credential")))
    return tuple(servers)


def _defaults_only(tracks: dict[str, dict[str, str]]) -> bool:
    """A ``tracks`` map that says only what unnamed mids mean anyway."""
    return all(
        t.get("source") in ("microphone", "camera") and t.get("layer", "high") == "high"
        for t in tracks.values()
    )


class SyntheticPeer:
    """Joins a class's live room, publishes what its `MediaClient` carries, and answers
    every subscribe offer; `media.received` counts what arrives from whom.

    `tiles`: send ``SUBSCRIPTION`` like the page (`PageSubscription` with that many student
    tiles), kept in step with the roster; `None`: send none (the server's defaults:
    everything). ``LAYERS`` events land in `layers`, ``SCREEN_SHARE`` in `screen_share`.
    """

    def __init__(
        self,
        api: ClassroomApi,
        account: Account,
        make_media: MediaFactory,
        *,
        class_id: str | None = None,
        host_addresses: tuple[str, ...] = ("127.0.0.1",),
        relay_only: bool = False,
        turn_transports: tuple[TurnTransport, ...] = ("udp", "tcp", "tls"),
        tiles: int | None = None,
    ) -> None:
        """`relay_only`: gather relayed candidates only (all media through the TURN
        server from ``ROOM_JOINED.iceServers``); `turn_transports`: which TURN URL to use
        (aiortc takes one), e.g. ``("tcp",)`` on a network that drops UDP."""
        self.api = api
        self.account = account
        self.class_id = class_id
        self._make_media = make_media
        self._host_addresses = host_addresses
        self.relay_only = relay_only
        self._turn_transports = turn_transports
        self.socket: ClassSocket | None = None
        self.media: MediaClient | None = None
        self.room: dict[str, Any] = {}
        self.errors: list[str] = []
        self.join_started = 0.0
        self.joined_at = 0.0
        self._signals: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None
        self._publish_answered = asyncio.Event()
        self.subscription = PageSubscription(account.id, tiles) if tiles is not None else None
        self.subscriptions_sent: list[dict[str, dict[str, str]]] = []
        self._subscribing = asyncio.Lock()
        self._in_room = False
        self._sends: set[asyncio.Task[None]] = set()
        self.layers = LayersRecord()
        self.screen_share: str | None = None
        """Who shares a screen in the room now (``ROOM_JOINED``, then ``SCREEN_SHARE``)."""
        self.audio_on = True
        self.video_on = True

    @property
    def user_id(self) -> str:
        return self.account.id

    async def connect(self) -> ClassSocket:
        """Open the class WebSocket (without joining the room)."""
        if self.socket is None or self.socket.closed:
            self.socket = await self.api.open_socket(self.account.token, self.class_id)
            self.socket.handlers["WEBRTC_OFFER"] = lambda d: self._signal("offer", d)
            self.socket.handlers["WEBRTC_ANSWER"] = lambda d: self._signal("answer", d)
            self.socket.observe("ROOM_JOINED", self._on_room_joined)
            self.socket.observe("PEER_JOINED", self._on_peer_joined)
            self.socket.observe("PEER_LEFT", self._on_peer_left)
            self.socket.observe("LAYERS", self.layers.on_event)
            self.socket.observe("SCREEN_SHARE", self._on_screen_share)
        return self.socket

    # The observers run in the socket's reader, in arrival order: ROOM_JOINED seeds the
    # roster before any PEER_JOINED of that membership is seen.
    def _on_room_joined(self, data: dict[str, Any]) -> None:
        self._in_room = True
        self.screen_share = data.get("screenShare")
        if self.subscription is not None:
            self.subscription.reset()
            self.subscription.seed(data.get("participants") or [])
            self._schedule_subscription()

    def _on_peer_joined(self, data: dict[str, Any]) -> None:
        if self.subscription is not None:
            self.subscription.joined(str(data.get("userId")), str(data.get("role", "student")))
            self._schedule_subscription()

    def _on_peer_left(self, data: dict[str, Any]) -> None:
        if self.subscription is not None:
            self.subscription.left(str(data.get("userId")))
            self._schedule_subscription()

    def _on_screen_share(self, data: dict[str, Any]) -> None:
        user_id = data.get("userId")
        if data.get("active"):
            self.screen_share = str(user_id)
        elif self.screen_share == user_id:
            self.screen_share = None

    def _schedule_subscription(self) -> None:
        task = asyncio.get_running_loop().create_task(self._send_subscription())
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send_subscription(self) -> None:
        # One at a time: each update is the difference from the one sent before it.
        async with self._subscribing:
            socket, policy = self.socket, self.subscription
            if policy is None or socket is None or socket.closed or not self._in_room:
                return
            update = policy.changes()
            if update:
                self.subscriptions_sent.append(update)
                with contextlib.suppress(ConnectionError):
                    await socket.send("SUBSCRIPTION", update)

    async def subscribe(self, choices: dict[str, dict[str, str]]) -> None:
        """Send a ``SUBSCRIPTION`` of one's own (partial: merged with earlier ones)."""
        assert self.socket is not None
        self.subscriptions_sent.append(choices)
        await self.socket.send("SUBSCRIPTION", choices)

    def _signal(self, kind: str, data: dict[str, Any]) -> None:
        # Between LEAVE_ROOM and the next ROOM_JOINED an offer belongs to the membership
        # that ended: answering it would hand the next one a stale connection.
        if self._in_room:
            self._signals.put_nowait((kind, data))

    async def join(self, *, publish: bool = True, timeout: float = 10.0) -> dict[str, Any]:
        """``JOIN_ROOM``, then publish (if asked) and wait for the publish answer."""
        socket = await self.connect()
        self.join_started = time.monotonic()
        self.room = await socket.request("JOIN_ROOM", {}, "ROOM_JOINED", timeout=timeout)
        self.joined_at = time.monotonic()
        ice_servers = ice_servers_from(self.room.get("iceServers", []))
        if self.relay_only and not any(u.startswith("turn") for s in ice_servers for u in s.urls):
            raise MediaFailed("Relay only was asked for, but the server offers no TURN relay")
        config = MediaConfig(
            ice_servers=ice_servers,
            host_addresses=self._host_addresses,
            ice_transport_policy="relay" if self.relay_only else "all",
            turn_transports=self._turn_transports,
        )
        self.media = self._make_media(config)
        self._pump = asyncio.create_task(self._run_signals(), name=f"peer-{self.user_id}")
        if publish:
            await self._publish(socket, timeout)
        return self.room

    async def _publish(self, socket: ClassSocket, timeout: float) -> None:
        """Send a publish offer (with its ``tracks`` map when it says more than the
        defaults) and apply the answer."""
        assert self.media is not None
        self._publish_answered.clear()
        offer = await self.media.publish_offer()
        if self.relay_only and " typ relay" not in offer:
            raise MediaFailed(
                "The TURN server gave no relayed address (credentials refused, or the "
                "server is unreachable)"
            )
        data: dict[str, Any] = {"pc": "publish", "offer": {"type": "offer", "sdp": offer}}
        tracks = self.media.publish_tracks()
        if not _defaults_only(tracks):
            data["tracks"] = tracks
        await socket.send("WEBRTC_OFFER", data)
        await self._wait_publish_answer(socket, timeout)

    async def share_screen(self, clip: EncodedClip, *, timeout: float = 10.0) -> None:
        """Add a screen track and renegotiate. `MediaFailed` with the server's reason if it
        refuses (a student); the track is then turned inactive again. aiortc cannot roll
        an offer back, so a refused peer cannot renegotiate any more."""
        assert self.media is not None and self.socket is not None
        self.media.add_screen(clip)
        try:
            await self._publish(self.socket, timeout)
        except MediaFailed:
            self.media.stop_screen()
            raise

    async def stop_screen(self, *, timeout: float = 10.0) -> None:
        """Turn the screen track inactive and renegotiate."""
        assert self.media is not None and self.socket is not None
        self.media.stop_screen()
        await self._publish(self.socket, timeout)

    async def _wait_publish_answer(self, socket: ClassSocket, timeout: float) -> None:
        """Until the publish answer arrives; `MediaFailed` if the offer is answered with
        ``ERROR`` instead."""
        answered = asyncio.ensure_future(self._publish_answered.wait())
        refused = asyncio.ensure_future(socket.error_for("WEBRTC_OFFER", timeout=timeout))
        try:
            done, _ = await asyncio.wait(
                (answered, refused), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (answered, refused):
                task.cancel()
            await asyncio.gather(answered, refused, return_exceptions=True)
        if answered in done:
            return
        if refused in done and refused.exception() is None:
            raise MediaFailed(str(refused.result().get("message", "")))
        raise TimeoutError(f"no publish answer within {timeout:g} s")

    async def _run_signals(self) -> None:
        while True:
            kind, data = await self._signals.get()
            try:
                await self._handle_signal(kind, data)
            except Exception as error:  # keep answering later offers
                log.exception("peer %s could not handle %s", self.user_id, kind)
                self.errors.append(f"{kind}: {error}")

    async def _handle_signal(self, kind: str, data: dict[str, Any]) -> None:
        media, socket = self.media, self.socket
        if media is None or socket is None:
            return
        if kind == "offer" and data.get("pc") == "subscribe":
            answer = await media.subscribe_offer(data["offer"]["sdp"], data.get("streams", {}))
            await socket.send(
                "WEBRTC_ANSWER", {"pc": "subscribe", "answer": {"type": "answer", "sdp": answer}}
            )
        elif kind == "answer" and data.get("pc") == "publish":
            await media.publish_answer(data["answer"]["sdp"])
            self._publish_answered.set()

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait until the media connections are up (publish, and subscribe once offered).

        Raises `MediaFailed` with a readable reason when the server reports a media
        ``ERROR`` (one answering a WebRTC event, or the room's own, e.g. "Media connection
        failed; ..."), a connection fails, or `timeout` passes.
        """
        deadline = time.monotonic() + timeout
        while True:
            media, socket = self.media, self.socket
            errors = [
                f["data"].get("message", "")
                for f in (socket.received if socket else [])
                if f.get("event") == "ERROR" and is_media_error(f.get("data") or {})
            ]
            if errors:
                raise MediaFailed(str(errors[0]))
            pcs = [pc for pc in (media.publish_pc, media.subscribe_pc) if pc] if media else []
            states = [pc.connectionState for pc in pcs]
            if "failed" in states:
                raise MediaFailed("Media connection failed (ICE found no working path)")
            if states and all(state == "connected" for state in states):
                return
            if time.monotonic() > deadline:
                raise MediaFailed(
                    f"Media connection not established within {timeout:g} s "
                    f"(states: {', '.join(states) or 'none'})"
                )
            await asyncio.sleep(0.05)

    async def set_media_state(self, *, audio: bool, video: bool) -> None:
        assert self.socket is not None
        self.audio_on, self.video_on = audio, video
        await self.socket.send("MEDIA_STATE", {"audio": audio, "video": video})

    async def set_microphone(self, on: bool, *, keep_sending: bool = False) -> None:
        """Mute or unmute: ``MEDIA_STATE``, and like the page stop sending while muted
        (`keep_sending`: send anyway, which the server must not forward)."""
        if self.media is not None:
            if on or keep_sending:
                self.media.resume_audio()
            else:
                self.media.pause_audio()
        await self.set_media_state(audio=on, video=self.video_on)

    async def chat(self, text: str, *, timeout: float = 10.0) -> dict[str, Any]:
        """``CHAT``: the message as the room heard it (this peer's copy, the server's
        acknowledgement that it is stored); `ApiFailure` with the server's ``ERROR``."""
        assert self.socket is not None
        mine = self.user_id
        return await self.socket.request(
            "CHAT",
            {"text": text},
            "CHAT",
            timeout=timeout,
            where=lambda m: m.get("userId") == mine and m.get("text") == text,
        )

    async def raise_hand(self, raised: bool = True) -> None:
        """``HAND``: the room hears of it if it changed."""
        assert self.socket is not None
        await self.socket.send("HAND", {"raised": raised})

    # The teacher's tools and a student's vote: each returns the room's answer (this
    # peer's copy of it) and raises `ApiFailure` with the server's ``ERROR``.
    async def delete_chat(self, message_id: str, *, timeout: float = 10.0) -> dict[str, Any]:
        """``CHAT_DELETE`` (the teacher): the room's ``CHAT_DELETED``."""
        assert self.socket is not None
        return await self.socket.request(
            "CHAT_DELETE",
            {"messageId": message_id},
            "CHAT_DELETED",
            timeout=timeout,
            where=lambda d: d.get("messageId") == message_id,
        )

    async def lower_hand(self, user_id: str, *, timeout: float = 10.0) -> dict[str, Any]:
        """``HAND_LOWER {userId}`` (the teacher): the room's ``HAND`` lowering it."""
        assert self.socket is not None
        return await self.socket.request(
            "HAND_LOWER",
            {"userId": user_id},
            "HAND",
            timeout=timeout,
            where=lambda d: d.get("userId") == user_id and d.get("raised") is False,
        )

    async def start_poll(
        self, question: str, options: list[str], *, anonymous: bool = False, timeout: float = 10.0
    ) -> dict[str, Any]:
        """``POLL_START`` (the teacher): the room's ``POLL_STARTED``."""
        assert self.socket is not None
        return await self.socket.request(
            "POLL_START",
            {"question": question, "options": options, "anonymous": anonymous},
            "POLL_STARTED",
            timeout=timeout,
            where=lambda d: d.get("question") == question,
        )

    async def vote(self, poll_id: str, option: int, *, timeout: float = 10.0) -> dict[str, Any]:
        """``POLL_VOTE`` (a student): ``POLL_VOTED`` once the vote is stored."""
        assert self.socket is not None
        return await self.socket.request(
            "POLL_VOTE",
            {"pollId": poll_id, "option": option},
            "POLL_VOTED",
            timeout=timeout,
            where=lambda d: d.get("pollId") == poll_id,
        )

    async def end_poll(self, poll_id: str, *, timeout: float = 10.0) -> dict[str, Any]:
        """``POLL_END`` (the teacher): the room's ``POLL_RESULT``."""
        assert self.socket is not None
        return await self.socket.request(
            "POLL_END",
            {"pollId": poll_id},
            "POLL_RESULT",
            timeout=timeout,
            where=lambda d: d.get("pollId") == poll_id,
        )

    async def moderate(self, user_id: str, action: str, *, timeout: float = 10.0) -> dict[str, Any]:
        """``MODERATE {userId, action}`` (the teacher): the room's ``MODERATION``."""
        assert self.socket is not None
        return await self.socket.request(
            "MODERATE",
            {"userId": user_id, "action": action},
            "MODERATION",
            timeout=timeout,
            where=lambda d: d.get("userId") == user_id and d.get("action") == action,
        )

    async def leave(self) -> None:
        """``LEAVE_ROOM`` and close the media (the socket stays open). Signals of this
        membership not handled yet are dropped, and no answer is sent after the leave."""
        self._in_room = False
        await self._stop_signals()
        if self.socket is not None and not self.socket.closed:
            with contextlib.suppress(ApiFailure, ConnectionError):
                await self.socket.send("LEAVE_ROOM", {})
        await self._close_media()

    async def _stop_signals(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        while not self._signals.empty():
            self._signals.get_nowait()

    async def _close_media(self) -> None:
        for task in list(self._sends):
            task.cancel()
        await self._stop_signals()
        if self.media is not None:
            await self.media.close()
            self.media = None

    async def close(self) -> None:
        """Drop everything at once (like a closed tab): media and socket."""
        await self._close_media()
        if self.socket is not None:
            await self.socket.close()
            self.socket = None
