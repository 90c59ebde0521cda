from collections.abc import Sequence

def sockaddr(host: str, port: int, /) -> bytes: ...
def send_frame(
    fd: int,
    address: bytes,
    protect: int,
    session: int,
    first_byte: int,
    payload_type: int,
    sequence_number: int,
    timestamp: int,
    ssrc: int,
    extension: bytes,
    payloads: list[bytes] | tuple[bytes, ...],
    marker_on_last: bool,
    gso: bool,
    /,
) -> int: ...

HISTORY_SIZE: int
GSO_RETRIED: int
DEFERRED: int

class Stream:
    frames: int
    next_picture_id: int | None
    @property
    def packets_sent(self) -> int: ...
    @property
    def octets(self) -> int: ...
    @property
    def sr_wall(self) -> float | None: ...
    @property
    def sr_rtp(self) -> int: ...
    @property
    def ssrc(self) -> int: ...
    @property
    def next_sequence_number(self) -> int: ...
    @property
    def routed(self) -> bool: ...
    def __init__(
        self, step: int, sequence_number: int, rtx_sequence_number: int, timestamp_origin: int
    ) -> None: ...
    def bind(
        self, ssrc: int, payload_type: int, first_byte: int, extension: bytes, send_time_at: int, /
    ) -> None: ...
    def set_route(
        self, owner: object, fd: int, address: bytes, protect: int, session: int, /
    ) -> None: ...
    def clear_route(self) -> None: ...
    def switch_source(self, gap: int = 0, /) -> None: ...
    def frame(
        self, pts: int, payloads: list[bytes] | tuple[bytes, ...], keyframe: bool = False, /
    ) -> tuple[int, int]: ...
    def resend(self, sequence_number: int, /) -> tuple[bytes, int, int, bool] | None: ...
    def next_rtx_sequence_number(self) -> int: ...
    def stamp(self) -> bytes: ...
    def count_sent(self, packets: int, octets: int, timestamp: int, /) -> None: ...
    def send(
        self, payloads: list[bytes] | tuple[bytes, ...], pts: int, keyframe: bool, gso: bool, /
    ) -> int: ...

class Leg:
    temporal_target: int
    temporal_current: int
    frames_forwarded: int
    frames_thinned: int
    stream: Stream | None
    def __init__(self) -> None: ...

def fanout(
    legs: Sequence[object],  # Leg objects, in a list or a tuple
    payloads: list[bytes] | tuple[bytes, ...],
    pts: int,
    keyframe: bool,
    picture_id: int | None,
    temporal: int,
    gso: bool,
    route_check: bool = ...,
    /,
) -> list[tuple[int, int]] | None: ...
