"""Settings from the environment, and a clear one-line refusal of bad values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from api.config import ConfigError, load_settings, publishers_per_frame
from api.rooms.manager import media_config
from sfu import TrackCaps


def test_defaults_need_no_environment_at_all() -> None:
    settings = load_settings({})
    assert settings.port == 3000 and settings.store_kind == "sqlite"
    assert not settings.auth0_enabled and settings.mongodb_uri is None


def test_seed_variable_names_are_read() -> None:
    settings = load_settings(
        {
            "PORT": "8080",
            "MONGODB_URI": "mongodb://db:27017/attendance",
            "AUTH0_DOMAIN": "tenant.us.auth0.com",
            "AUTH0_AUDIENCE": "https://liveclassroom.api",
            "AUTH0_NAMESPACE": "https://liveclassroom.app/",
            "DATA_DIR": "/var/lib/sfu",
            "ICE_ADDRESSES": "127.0.0.1, 10.0.0.5",
            "ICE_ANNOUNCED_ADDRESS": "203.0.113.7",
        }
    )
    assert settings.port == 8080 and settings.store_kind == "mongodb"
    assert settings.auth0_issuer == "https://tenant.us.auth0.com/"
    assert settings.auth0_jwks == "https://tenant.us.auth0.com/.well-known/jwks.json"
    assert settings.auth0_namespace == "https://liveclassroom.app"
    assert settings.data_dir == Path("/var/lib/sfu")
    assert settings.ice_addresses == ("127.0.0.1", "10.0.0.5")
    assert settings.ice_announced_address == "203.0.113.7"


def test_metrics_settings_are_read_and_the_token_is_not_shown() -> None:
    assert load_settings({}).metrics_enabled is True
    assert load_settings({}).metrics_token is None
    settings = load_settings({"METRICS_ENABLED": "false", "METRICS_TOKEN": "s3cret"})
    assert settings.metrics_enabled is False and settings.metrics_token == "s3cret"
    assert "s3cret" not in repr(settings)


def test_track_caps_are_read_into_the_media_plane() -> None:
    defaults = media_config(load_settings({})).track_caps
    assert defaults == TrackCaps()  # 256 kbit/s and 120 packets audio, 5 Mbit/s and 1000 video
    caps = media_config(
        load_settings(
            {
                "MEDIA_AUDIO_MAX_KBPS": "64",
                "MEDIA_AUDIO_MAX_PACKETS": "60",
                "MEDIA_VIDEO_MAX_KBPS": "0",
                "MEDIA_VIDEO_MAX_PACKETS": "300",
            }
        )
    ).track_caps
    assert caps == TrackCaps(64_000, 60, 0, 300)


def test_connection_caps_are_read() -> None:
    defaults = load_settings({})
    assert (defaults.http_max_connections, defaults.http_max_connections_per_address) == (
        2000,
        500,
    )
    settings = load_settings(
        {"HTTP_MAX_CONNECTIONS": "10", "HTTP_MAX_CONNECTIONS_PER_ADDRESS": "3"}
    )
    assert (settings.http_max_connections, settings.http_max_connections_per_address) == (10, 3)


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"PORT": "eighty"}, "PORT must be an integer"),
        ({"PORT": "70000"}, "PORT must be between 0 and 65535"),
        ({"MONGODB_URI": "postgres://x"}, "MONGODB_URI must start with mongodb://"),
        ({"AUTH0_DOMAIN": "tenant.auth0.com"}, "AUTH0_AUDIENCE is required"),
        ({"AUTH0_DOMAIN": "https://tenant.auth0.com/", "AUTH0_AUDIENCE": "a"}, "bare host name"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL must be"),
        ({"ICE_ADDRESSES": "localhost"}, "ICE_ADDRESSES must hold IP addresses"),
        ({"METRICS_ENABLED": "maybe"}, "METRICS_ENABLED must be true or false"),
        ({"MEDIA_VIDEO_MAX_KBPS": "-1"}, "MEDIA_VIDEO_MAX_KBPS must be between 0"),
        ({"MEDIA_AUDIO_MAX_PACKETS": "lots"}, "MEDIA_AUDIO_MAX_PACKETS must be an integer"),
        ({"HTTP_MAX_CONNECTIONS": "0"}, "HTTP_MAX_CONNECTIONS must be between 1 and 1000000"),
        (
            {"HTTP_MAX_CONNECTIONS_PER_ADDRESS": "lots"},
            "HTTP_MAX_CONNECTIONS_PER_ADDRESS must be an integer",
        ),
    ],
)
def test_invalid_values_are_refused_with_a_reason(env: dict[str, str], reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        load_settings(env)


def test_the_server_stops_with_a_one_line_reason_on_bad_config(tmp_path: Path) -> None:
    env = {**os.environ, "PORT": "not-a-port", "DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "api"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "classroom-sfu: configuration error: PORT must be an integer, got 'not-a-port'"
    ]


def test_the_default_frame_limit_holds_a_full_default_room_of_publishers() -> None:
    settings = load_settings({})
    fits = publishers_per_frame(settings.ws_max_frame_bytes)
    assert fits >= settings.room_max_participants - 1
    assert publishers_per_frame(1024) == 0
    assert publishers_per_frame(4 * 65536) > 4 * fits - 4
