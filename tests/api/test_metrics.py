"""``GET /metrics`` against a real server with real aiortc peers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api import media_metrics
from api.config import Settings
from api.metrics import ServerMetrics, TimedStore
from api.store import SqliteStore
from scripts.synthpeer.api_client import Account
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack, vp8_clip
from scripts.synthpeer.peer import SyntheticPeer
from sfu import MediaConfig
from tests.server_process import REPO
from tests.waiting import wait_until

from .conftest import RunningServer, ServerFactory
from .room_peers import media_server, settings

__all__ = ["media_server", "settings"]  # fixtures

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class PeerFactory(Protocol):
    def __call__(
        self, account: Account, *, loss_every: int | None = None
    ) -> Awaitable[SyntheticPeer]: ...


@pytest.fixture
async def peers(media_server: RunningServer) -> AsyncIterator[PeerFactory]:
    made: list[SyntheticPeer] = []

    async def make(account: Account, *, loss_every: int | None = None) -> SyntheticPeer:
        """`loss_every`: drop every n-th RTP packet the peer sends and receives."""

        def media(config: MediaConfig) -> MediaClient:
            return MediaClient(
                config,
                video=vp8_clip(),
                audio=ToneAudioTrack(),
                decode="none",
                loss_every=loss_every,
            )

        peer = SyntheticPeer(media_server.api, account, media)
        made.append(peer)
        await peer.join()
        return peer

    yield make
    for peer in made:
        await peer.close()


async def scrape(
    server: RunningServer, token: str | None = None, accept: str | None = None
) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if accept:
        headers["Accept"] = accept
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.api.base_url + "/metrics", headers=headers) as response,
    ):
        return response.status, await response.text()


async def samples(server: RunningServer) -> Samples:
    """Every sample of a scrape, parsed with prometheus-client's own parser."""
    status, text = await scrape(server)
    assert status == 200, text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def total(found: Samples, name: str) -> float:
    return sum(v for (sample, _), v in found.items() if sample == name)


async def test_gauges_and_counters_move_as_people_join_publish_and_leave(
    media_server: RunningServer, peers: PeerFactory
) -> None:
    before = await samples(media_server)
    assert value(before, "classroom_rooms") == 0
    assert value(before, "classroom_websocket_connections") == 0
    assert value(before, "process_cpu_seconds_total") > 0
    assert value(before, "process_resident_memory_bytes") > 10e6

    room = await media_server.classroom(students=1)
    await media_server.api.start_session(room.teacher, room.class_id)
    await peers(room.teacher)
    student = await peers(room.students[0])

    async def both_forwarding() -> bool:
        now = await samples(media_server)
        return (
            value(now, "classroom_participants", media="connected") == 2
            and value(now, "classroom_consumers", kind="video", state="active") == 2
            and value(now, "classroom_forwarded_frames_total", kind="video") > 30
        )

    await wait_until(both_forwarding)
    during = await samples(media_server)
    assert value(during, "classroom_rooms") == 1
    # the room's media and sockets run as tasks (this loop is also the peers')
    tasks = value(before, "classroom_event_loop_tasks")
    assert value(during, "classroom_event_loop_tasks") > tasks > 0
    assert value(during, "classroom_websocket_connections") == 2
    assert value(during, "classroom_producers", kind="video") == 2
    assert value(during, "classroom_producers", kind="audio") == 2
    assert value(during, "classroom_received_packets_total", kind="video") > 0
    assert value(during, "classroom_received_bytes_total", kind="video") > 0
    assert value(during, "classroom_forwarded_frames_total", kind="audio") > 0
    for kind in ("audio", "video"):
        packets = value(during, "classroom_forwarded_packets_total", kind=kind)
        assert packets >= value(during, "classroom_forwarded_frames_total", kind=kind) > 0
        assert value(during, "classroom_forwarded_bytes_total", kind=kind) > packets
    assert value(during, "classroom_plis_sent_total", kind="video") >= 1  # new subscribers
    assert value(during, "classroom_join_seconds_count") == 2
    assert 0 < value(during, "classroom_join_seconds_sum") < 2
    # Calls that reached the store: the second join's was answered by api.store_cache.
    assert value(during, "classroom_store_seconds_count", operation="get_active_session") >= 1
    assert value(during, "classroom_store_seconds_count", operation="start_session") == 1

    # Once receiver reports answer sender reports, every forwarded stream has a round trip
    # time and a loss share; on loopback they are small and zero.
    async def links_known() -> bool:
        now = await samples(media_server)
        return all(
            value(now, f"classroom_subscriber_{name}_gcount", kind=kind) == 2
            for name in ("rtt_seconds", "loss_ratio")
            for kind in ("audio", "video")
        )

    await wait_until(links_known)
    links = await samples(media_server)
    for kind in ("audio", "video"):
        assert value(links, "classroom_subscriber_rtt_seconds_bucket", kind=kind, le="0.1") == 2
        assert value(links, "classroom_subscriber_loss_ratio_bucket", kind=kind, le="0.0") == 2
        assert value(links, "classroom_subscriber_loss_ratio_gsum", kind=kind) == 0

    forwarded = value(during, "classroom_forwarded_frames_total", kind="video")
    await student.close()

    async def student_gone() -> bool:
        now = await samples(media_server)
        return value(now, "classroom_participants", media="connected") == 1

    await wait_until(student_gone)
    after = await samples(media_server)
    assert value(after, "classroom_websocket_connections") == 1
    assert value(after, "classroom_producers", kind="video") == 1
    assert value(after, "classroom_consumers", kind="video", state="active") == 0
    # Counters of closed producers and consumers stay in the totals.
    assert value(after, "classroom_forwarded_frames_total", kind="video") >= forwarded


async def test_lost_packets_show_up_as_nacks_and_retransmissions(
    media_server: RunningServer, peers: PeerFactory
) -> None:
    room = await media_server.classroom(students=1)
    await media_server.api.start_session(room.teacher, room.class_id)
    # Every 20th RTP packet is lost on each hop, both ways.
    await peers(room.teacher, loss_every=20)
    await peers(room.students[0], loss_every=20)

    async def repaired() -> bool:
        now = await samples(media_server)
        return all(
            value(now, name, kind="video") > 0
            for name in (
                "classroom_nacks_sent_total",
                "classroom_nacks_received_total",
                "classroom_retransmissions_total",
            )
        )

    await wait_until(repaired)
    found = await samples(media_server)
    retransmitted = value(found, "classroom_retransmissions_total", kind="video")
    assert retransmitted <= value(found, "classroom_nacks_received_total", kind="video")
    assert value(found, "classroom_forwarded_packets_total", kind="video") > retransmitted
    for name in ("nacks_sent", "nacks_received", "retransmissions"):
        assert (f"classroom_{name}_total", frozenset({("kind", "audio")})) in found


async def test_packets_over_a_track_cap_are_counted_by_reason(
    start_server: ServerFactory, settings: Settings
) -> None:
    # The clip sends about 90 video packets a second: a cap of 40 refuses about half.
    server = await start_server(replace(settings, media_video_max_packets=40))
    room = await server.classroom(students=0)
    await server.api.start_session(room.teacher, room.class_id)
    before = await samples(server)
    reasons = {
        dict(labels)["reason"]
        for name, labels in before
        if name == "classroom_refused_packets_total"
    }
    assert reasons >= {"track_cap", "unknown_ssrc", "unnegotiated_mid", "rtcp_flood"}

    def media(config: MediaConfig) -> MediaClient:
        return MediaClient(config, video=vp8_clip(), audio=None, decode="none")

    peer = SyntheticPeer(server.api, room.teacher, media)
    try:
        await peer.join()

        async def refused() -> bool:
            now = await samples(server)
            counted = value(now, "classroom_refused_packets_total", reason="track_cap")
            return (
                counted > value(before, "classroom_refused_packets_total", reason="track_cap") + 20
            )

        await wait_until(refused)
    finally:
        await peer.close()


async def test_errors_are_counted_by_channel_and_type(media_server: RunningServer) -> None:
    teacher = await media_server.account("teacher")
    status, _ = await media_server.api.request("POST", "/class", body={"className": "x"})
    assert status == 401
    status, _ = await media_server.api.request("GET", "/class/nope", token=teacher.token)
    assert status == 404
    socket = await media_server.api.open_socket(teacher.token)
    await socket.send("NO_SUCH_EVENT", {})
    await socket.next("ERROR")
    await socket.close()
    found = await samples(media_server)
    assert value(found, "classroom_errors_total", channel="http", type="Unauthorized") == 1
    assert value(found, "classroom_errors_total", channel="http", type="NotFound") == 1
    assert value(found, "classroom_errors_total", channel="ws", type="InvalidRequest") == 1
    assert total(found, "classroom_errors_total") == 3


async def test_a_token_is_required_when_one_is_configured(
    start_server: ServerFactory, settings: Settings
) -> None:
    server = await start_server(replace(settings, metrics_token="s3cret"))
    assert (await scrape(server))[0] == 401
    assert (await scrape(server, token="wrong"))[0] == 401
    status, text = await scrape(server, token="s3cret")
    assert status == 200
    assert "classroom_rooms 0.0" in text
    assert "s3cret" not in repr(server.settings)


async def test_openmetrics_is_served_when_asked_for(media_server: RunningServer) -> None:
    status, text = await scrape(media_server, accept="application/openmetrics-text")
    assert status == 200
    assert text.rstrip().endswith("# EOF")


async def test_disabled_metrics_are_not_served(
    start_server: ServerFactory, settings: Settings
) -> None:
    server = await start_server(replace(settings, metrics_enabled=False))
    status, text = await scrape(server)
    assert status == 404
    assert json.loads(text) == {"success": False, "error": "Not found"}


async def test_two_apps_in_one_process_keep_separate_registries(
    start_server: ServerFactory, settings: Settings, tmp_path: Path
) -> None:
    first = await start_server(settings)
    second = await start_server(replace(settings, data_dir=tmp_path / "second"))
    await first.api.request("POST", "/class", body={})
    assert value(
        await samples(first), "classroom_errors_total", channel="http", type="Unauthorized"
    )
    assert total(await samples(second), "classroom_errors_total") == 0


async def test_the_timed_store_delegates_every_store_method_and_times_it(tmp_path: Path) -> None:
    metrics = ServerMetrics()
    store = TimedStore.wrap(SqliteStore(tmp_path / "db.sqlite3"), metrics.store_seconds)
    assert not TimedStore.__abstractmethods__
    await store.open()
    try:
        user = await store.create_user(name="Ann", email="ann@school.test", role="student")
        assert await store.get_user(user.id) == user
        assert await store.get_user_by_email("ANN@school.test") == user
    finally:
        await store.close()
    found = {
        (sample.name, sample.labels.get("operation")): sample.value
        for family in text_string_to_metric_families(metrics.render(None)[0].decode())
        for sample in family.samples
    }
    for operation in ("open", "create_user", "get_user", "get_user_by_email", "close"):
        assert found[("classroom_store_seconds_count", operation)] == 1


@pytest.mark.network
@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare to create a network namespace",
)
def test_without_a_token_only_loopback_clients_may_scrape() -> None:
    probe = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "tests.api.metrics_netns_probe"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert json.loads(probe.stdout.strip().splitlines()[-1]) == {
        "open_loopback": 200,
        "open_outside": 403,
        "open_outside_with_token": 403,
        "token_loopback": 401,
        "token_outside": 401,
        "token_outside_with_token": 200,
    }


def test_link_histograms_put_each_value_in_the_first_bucket_that_holds_it() -> None:
    distribution = media_metrics._Distribution((0.0, 0.05, 0.1))
    for value in (0.0, 0.05, 0.07, 0.5):
        distribution.add("video", value)
    (metric,) = [distribution.family("x_ratio", "doc")]
    video = {
        s.labels["le"]: s.value
        for s in metric.samples
        if s.name == "x_ratio_bucket" and s.labels["kind"] == "video"
    }
    assert video == {"0.0": 1, "0.05": 2, "0.1": 3, "+Inf": 4}
    gsum = [
        s.value for s in metric.samples if s.name == "x_ratio_gsum" and s.labels["kind"] == "video"
    ]
    assert gsum == [0.62]
