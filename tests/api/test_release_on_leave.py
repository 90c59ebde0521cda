"""A participant who leaves is released: nothing of theirs (their two peer connections,
the native receive path's timers, producers, consumers) keeps them alive afterwards. A
churning class grew by about 3 MB a rejoin while the REMB timer of a closed publish
connection rescheduled itself for ever."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

from aiortc import RTCPeerConnection

from api.config import Settings
from api.rooms.member import RoomMember
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack, vp8_clip
from scripts.synthpeer.peer import SyntheticPeer
from sfu import MediaConfig, Participant

from .conftest import ServerFactory
from .room_peers import wait_for


def media(config: MediaConfig) -> MediaClient:
    return MediaClient(config, video=vp8_clip(), audio=ToneAudioTrack(), decode="none")


async def test_a_participant_who_left_is_not_kept_alive(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    server = await start_server(
        Settings(host="127.0.0.1", port=0, data_dir=tmp_path, ice_addresses=("127.0.0.1",))
    )
    room = await server.classroom(students=1)
    await server.api.start_session(room.teacher, room.class_id)
    teacher = SyntheticPeer(server.api, room.teacher, media)
    await teacher.join()
    gone: list[weakref.ref[object]] = []
    try:
        for _ in range(3):
            student = SyntheticPeer(server.api, room.students[0], media)
            await student.join()
            live = server.services.rooms.live_room(room.class_id)
            assert live is not None
            member = live.members[room.students[0].id]
            participant: Participant = member.participant

            def flowing(m: RoomMember = member, p: Participant = participant) -> bool:
                producers = p.producers.values()
                return (
                    m.media_connected and bool(producers) and all(x.is_flowing() for x in producers)
                )

            await wait_for(flowing)
            gone.append(weakref.ref(participant))
            pcs = [
                pc
                for pc in gc.get_referents(*vars(participant).values())
                if isinstance(pc, RTCPeerConnection)
            ]
            gone.extend(weakref.ref(pc) for pc in pcs)
            del member, participant, pcs, flowing
            await student.close()
            await asyncio.sleep(1.5)  # past a REMB interval: a live timer would have fired
        gc.collect()
        assert [ref for ref in gone if ref() is not None] == []
    finally:
        await teacher.close()
