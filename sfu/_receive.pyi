from collections.abc import Callable
from typing import Any, Final

AUDIO: Final[int]
VP8: Final[int]
H264: Final[int]
FRAME: Final[int]
LEVEL: Final[int]
SILENCE: Final[int]
LOSS: Final[int]
NACK: Final[int]
OTHER: Final[int]
RTCP: Final[int]
UNKNOWN: Final[int]
REPORT: Final[int]

class Receiver:
    datagrams: int
    unprotect_errors: int
    malformed: int
    ssrcs: list[int]
    refused: dict[str, int]
    def __init__(
        self,
        unprotect: int,
        session: int,
        keep: object,
        audio_level_id: int = -1,
        max_wait: float = 0.3,
    ) -> None: ...
    def add_stream(
        self, ssrc: int, kind: int, payload_type: int, clock_rate: int, token: object
    ) -> None: ...
    def add_rtx(self, ssrc: int, media_ssrc: int, payload_type: int) -> None: ...
    def remove(self, ssrc: int, /) -> bool: ...
    def drain(self, fd: int, /) -> list[tuple[Any, ...]]: ...
    def feed(self, datagram: bytes, address: object = None, /) -> list[tuple[Any, ...]]: ...
    def feed_plain(self, rtp: bytes, /) -> list[tuple[Any, ...]]: ...
    def statistics(self, ssrc: int, /) -> tuple[int, int, int, int, int] | None: ...
    def counts(self, ssrc: int, /) -> dict[str, int] | None: ...
    def cap(
        self,
        audio_bitrate: float,
        audio_packet_rate: float,
        video_bitrate: float,
        video_packet_rate: float,
    ) -> None: ...
    def refuse(self, ssrc: int, reason: str, /) -> None: ...
    def direct(
        self,
        ssrc: int,
        fanout: Callable[..., list[tuple[int, int]] | None] | None,
        legs: tuple[Any, ...] = ...,
        gso: bool = False,
    ) -> None: ...
    def take(
        self, ssrc: int, /
    ) -> (
        tuple[
            int,
            int,
            int,
            tuple[int, int, int, int],
            tuple[int, int, int, int],
            float,
            int,
            bool,
            int,
            float,
        ]
        | None
    ): ...

class ControlReader:
    def __init__(
        self, unprotect_rtcp: int, session: int, keep: object, remb_interval: float = 0.1
    ) -> None: ...
    def drain(self, fd: int, /) -> list[tuple[Any, ...]]: ...
    def feed(self, datagram: bytes, /) -> list[tuple[Any, ...]]: ...
    def counts(self) -> dict[str, int]: ...

class HeaderCount:
    ssrc: int
    consume: bool
    packets: int
    bytes: int
    frames: int
    expected: int
    first_frame_at: float | None
    last_frame_at: float | None

class HeaderCounter:
    datagrams: int
    batches: int
    watched: int
    def watch(self, ssrc: int, audio: bool, consume: bool) -> HeaderCount: ...
    def forget(self, ssrc: int, /) -> bool: ...
    def drain(self, fd: int, /) -> list[tuple[bytes, Any]]: ...
    def feed(self, datagram: bytes | memoryview, /) -> bool: ...

def refused_totals() -> dict[str, int]: ...
