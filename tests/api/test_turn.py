"""TURN REST credentials, ICE settings, and the iceServers handed out at ROOM_JOINED and
``GET /ice-servers``."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from api.config import ConfigError, Settings, load_settings
from api.ice_settings import IceSettings
from api.rooms.manager import media_config
from api.turn import ice_servers_for, sfu_ice_servers, turn_credential, turn_password
from sfu.peer import selected_servers

from .conftest import RunningServer, ServerFactory

TURN_URLS = (
    "turn:turn.example.org:3478?transport=udp",
    "turn:turn.example.org:3478?transport=tcp",
    "turns:turn.example.org:443?transport=tcp",
)
ICE = IceSettings(
    turn_urls=TURN_URLS,
    turn_secret="s3cret",
    turn_ttl_seconds=600,
    stun_urls=("stun:stun.example.org:3478",),
)


def test_the_password_is_base64_hmac_sha1_of_the_username() -> None:
    # openssl: echo -n 1700000000:user | openssl dgst -sha1 -hmac secret -binary | base64
    assert turn_password("secret", "1700000000:user") == "I/MZeIG6MwzOV8Uubr9liB2556o="
    credential = turn_credential("secret", "user", ttl_seconds=600, now=1_699_999_400)
    assert credential.username == "1700000000:user" and credential.expires_at == 1_700_000_000
    assert credential.password == "I/MZeIG6MwzOV8Uubr9liB2556o="
    with pytest.raises(ValueError):
        turn_credential("secret", "a:b", 600)


def test_ice_servers_for_a_user_list_stun_then_turn_with_a_fresh_credential() -> None:
    assert ice_servers_for(IceSettings(), "u1") == []
    servers = ice_servers_for(ICE, "64b7f0c2a1b2c3d4e5f60718", now=1000)
    assert servers == [
        {"urls": ["stun:stun.example.org:3478"]},
        {
            "urls": list(TURN_URLS),
            "username": "1600:64b7f0c2a1b2c3d4e5f60718",
            "credential": turn_password("s3cret", "1600:64b7f0c2a1b2c3d4e5f60718"),
        },
    ]
    assert "s3cret" not in repr(ICE)


def test_ice_settings_are_read_from_the_environment() -> None:
    settings = load_settings(
        {
            "TURN_URLS": ", ".join(TURN_URLS),
            "TURN_SECRET": "s3cret",
            "TURN_TTL_SECONDS": "900",
            "STUN_URLS": "stun:stun.example.org:3478",
            "SFU_USE_ICE_SERVERS": "true",
            "ICE_PORT_RANGE": "40000-40999",
            "ICE_CONNECT_TIMEOUT_SECONDS": "12",
        }
    )
    ice = settings.ice
    assert ice.turn_urls == TURN_URLS and ice.turn_secret == "s3cret" and ice.turn_enabled
    assert ice.turn_ttl_seconds == 900 and ice.stun_urls == ("stun:stun.example.org:3478",)
    assert ice.sfu_use_ice_servers and ice.port_range == (40000, 40999)
    assert ice.connect_timeout_seconds == 12
    assert "s3cret" not in repr(settings)
    defaults = load_settings({}).ice
    assert defaults == IceSettings() and not defaults.turn_enabled
    assert defaults.turn_ttl_seconds == 3600 and defaults.port_range is None


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"TURN_URLS": "http://turn.example.org"}, "TURN_URLS entries must look like"),
        ({"TURN_URLS": "turn:h:3478?transport=sctp", "TURN_SECRET": "x"}, "TURN_URLS entries"),
        ({"TURN_URLS": "turn:h:99999", "TURN_SECRET": "x"}, "port out of range"),
        ({"TURN_URLS": "turn:h:3478"}, "TURN_SECRET is required"),
        ({"TURN_SECRET": "x"}, "TURN_URLS is empty"),
        ({"TURN_URLS": "turn:h", "TURN_SECRET": "x", "TURN_TTL_SECONDS": "5"}, "between 60"),
        ({"STUN_URLS": "turn:h:3478"}, "STUN_URLS entries must look like"),
        ({"SFU_USE_ICE_SERVERS": "yes"}, "SFU_USE_ICE_SERVERS needs TURN_URLS or STUN_URLS"),
        ({"SFU_USE_ICE_SERVERS": "maybe"}, "SFU_USE_ICE_SERVERS must be true or false"),
        ({"ICE_PORT_RANGE": "40000"}, "ICE_PORT_RANGE must be LOW-HIGH"),
        ({"ICE_PORT_RANGE": "50000-40000"}, "ICE_PORT_RANGE must be LOW-HIGH"),
        ({"ICE_CONNECT_TIMEOUT_SECONDS": "0"}, "between 1 and 300"),
    ],
)
def test_bad_ice_settings_are_refused_with_a_reason(env: dict[str, str], reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        load_settings(env)


def test_the_server_stops_with_one_line_on_a_bad_turn_setting(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "api"],
        env={"TURN_URLS": "turn:h:3478", "DATA_DIR": str(tmp_path), "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "TURN_SECRET is required" in result.stderr


def test_media_config_carries_the_port_range_timeout_and_the_servers_own_credentials() -> None:
    plain = media_config(Settings())
    assert plain.ice_servers == () and plain.ice_servers_source is None
    assert plain.port_range is None and plain.ice_connect_timeout == 20.0

    ice = replace(ICE, sfu_use_ice_servers=True, port_range=(40000, 40099))
    config = media_config(Settings(ice=ice, ice_announced_address="203.0.113.7"))
    assert config.port_range == (40000, 40099)
    assert config.announced_address == "203.0.113.7"
    selected = selected_servers(config)
    assert selected.turn == TURN_URLS[0]  # the server prefers TURN over UDP
    assert selected.stun == "stun:stun.example.org:3478"
    assert selected.username is not None and selected.username.endswith(":sfu")
    expiry = int(selected.username.split(":")[0])
    assert time.time() + 590 < expiry <= time.time() + 600
    assert selected.credential == turn_password("s3cret", selected.username)
    assert [s.urls for s in sfu_ice_servers(ICE)] == [ICE.stun_urls, TURN_URLS]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(host="127.0.0.1", port=0, data_dir=tmp_path / "data", ice=ICE)


async def test_get_ice_servers_gives_the_caller_a_credential_of_their_own(
    server: RunningServer,
) -> None:
    status, body = await server.api.request("GET", "/ice-servers")
    assert status == 401 and body == {
        "success": False,
        "error": "Unauthorized, token missing or invalid",
    }
    student = await server.account("student")
    data = await server.api.call("GET", "/ice-servers", token=student.token)
    assert data["ttl"] == 600
    stun, turn = data["iceServers"]
    assert stun == {"urls": list(ICE.stun_urls)}
    assert turn["urls"] == list(TURN_URLS)
    expiry, user = turn["username"].split(":")
    assert user == student.id and abs(int(expiry) - (time.time() + 600)) < 5
    assert turn["credential"] == turn_password("s3cret", turn["username"])


async def test_without_turn_the_endpoint_and_room_joined_offer_nothing(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    plain = await start_server(Settings(host="127.0.0.1", port=0, data_dir=tmp_path / "plain"))
    teacher = await plain.account("teacher")
    assert await plain.api.call("GET", "/ice-servers", token=teacher.token) == {
        "iceServers": [],
        "ttl": None,
    }


async def test_room_joined_carries_per_user_turn_credentials(server: RunningServer) -> None:
    room = await server.classroom(students=1)
    await server.api.start_session(room.teacher, room.class_id)
    joined = {}
    for account in (room.teacher, room.students[0]):
        socket = await server.api.open_socket(account.token, room.class_id)
        try:
            joined[account.id] = await socket.request("JOIN_ROOM", {}, "ROOM_JOINED")
        finally:
            await socket.close()
    for user_id, data in joined.items():
        stun, turn = data["iceServers"]
        assert stun["urls"] == list(ICE.stun_urls)
        assert turn["username"].endswith(f":{user_id}")
        assert turn["credential"] == turn_password("s3cret", turn["username"])
