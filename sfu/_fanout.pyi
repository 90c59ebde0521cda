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
