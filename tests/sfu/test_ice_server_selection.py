"""aiortc uses one STUN and one TURN URL: the media plane picks them by transport."""

from __future__ import annotations

import pytest

from sfu import IceServer, MediaConfig, create_peer_connection
from sfu.aiortc_adapter import testing as adapter_testing
from sfu.ice_servers import select_servers, turn_transport
from sfu.peer import selected_servers

TURN = IceServer(
    (
        "turn:turn.example.org:3478?transport=udp",
        "turn:turn.example.org:3478?transport=tcp",
        "turns:turn.example.org:443?transport=tcp",
    ),
    "1700000000:user",
    "password",
)
STUN = IceServer(("stun:stun.example.org:3478",))


@pytest.mark.parametrize(
    ("url", "transport"),
    [
        ("turn:h:3478", "udp"),
        ("turn:h:3478?transport=udp", "udp"),
        ("turn:h?transport=tcp", "tcp"),
        ("turns:h:443?transport=tcp", "tls"),
        ("turns:h:5349", "tls"),
        ("turns:h:443?transport=udp", None),  # DTLS: aiortc cannot
        ("stun:h:3478", None),
    ],
)
def test_each_turn_url_is_classified_by_how_it_reaches_the_server(
    url: str, transport: str | None
) -> None:
    assert turn_transport(url) == transport


@pytest.mark.parametrize(
    ("preference", "chosen"),
    [
        (("udp", "tcp", "tls"), "turn:turn.example.org:3478?transport=udp"),
        (("tcp",), "turn:turn.example.org:3478?transport=tcp"),
        (("tls", "tcp"), "turns:turn.example.org:443?transport=tcp"),
    ],
)
def test_the_turn_url_is_the_one_whose_transport_ranks_first(
    preference: tuple[str, ...], chosen: str
) -> None:
    selected = select_servers([STUN, TURN], preference)  # type: ignore[arg-type]
    assert selected.stun == "stun:stun.example.org:3478"
    assert selected.turn == chosen
    assert (selected.username, selected.credential) == ("1700000000:user", "password")
    assert [s.urls for s in selected.as_servers()] == [(STUN.urls[0],), (chosen,)]


def test_no_acceptable_transport_means_no_turn_server() -> None:
    udp_only = IceServer(("turn:turn.example.org:3478",), "u", "p")
    assert select_servers([udp_only], ("tcp",)).turn is None
    assert select_servers([], ("udp",)).as_servers() == ()


async def test_aioice_gets_the_selected_servers_and_the_relay_policy() -> None:
    config = MediaConfig(
        ice_servers=(STUN, TURN), turn_transports=("tcp",), ice_transport_policy="relay"
    )
    pc = create_peer_connection(config)
    try:
        pc.addTransceiver("audio")
        assert adapter_testing.ice_servers_in_use(pc) == [
            (("stun.example.org", 3478), ("turn.example.org", 3478))
        ]
        assert adapter_testing.relay_settings_in_use(pc) == [("RELAY", "tcp", False)]
    finally:
        await pc.close()


def test_a_source_gives_fresh_servers_for_every_connection() -> None:
    calls: list[int] = []

    def source() -> tuple[IceServer, ...]:
        calls.append(1)
        return (IceServer(("turn:t:3478",), f"{len(calls)}:sfu", "x"),)

    config = MediaConfig(ice_servers_source=source, ice_transport_policy="relay")
    assert selected_servers(config).username == "1:sfu"
    assert selected_servers(config).username == "2:sfu"


def test_relay_only_without_a_turn_server_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a TURN server"):
        MediaConfig(ice_servers=(STUN,), ice_transport_policy="relay")
    with pytest.raises(ValueError, match="turn_transports"):
        MediaConfig(turn_transports=("sctp",))  # type: ignore[arg-type]
