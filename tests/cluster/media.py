"""The media side of the cluster tests: aiortc peers of a class (decoding what they get),
and the checks on what they receive."""

from __future__ import annotations

from scripts.synthpeer.api_client import Account, ClassroomApi
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack, vp8_clip
from scripts.synthpeer.peer import SyntheticPeer
from sfu import MediaConfig

ICE = {"a": "127.0.0.2", "b": "127.0.0.3"}
"""Each node gathers ICE on an address of its own."""
SAMPLED = 10
"""The frames a synthetic peer decodes of each stream (the first ones; the rest counted)."""


def peer(api: ClassroomApi, account: Account, class_id: str) -> SyntheticPeer:
    def media(config: MediaConfig) -> MediaClient:
        return MediaClient(config, video=vp8_clip(), audio=ToneAudioTrack())

    return SyntheticPeer(api, account, media, class_id=class_id)


def frames_from(viewer: SyntheticPeer, user_id: str) -> tuple[int, int]:
    """Video frames received from `user_id`, and how many of the sampled ones decoded."""
    sink = viewer.media.sink_of(user_id, "camera") if viewer.media else None
    return (sink.frames, sink.decoded) if sink is not None else (0, 0)


class PairMedia:
    """A teacher's and a student's peer, and whether video flows both ways between them."""

    def __init__(self, teaching: SyntheticPeer, learning: SyntheticPeer) -> None:
        self.teaching = teaching
        self.learning = learning

    def frames(self) -> tuple[int, int]:
        """Frames the teacher got from the student, and the student from the teacher."""
        return (
            frames_from(self.teaching, self.learning.user_id)[0],
            frames_from(self.learning, self.teaching.user_id)[0],
        )

    async def flowing(self, since: tuple[int, int] = (0, 0)) -> bool:
        """More than 30 frames each way since `since`."""
        return all(n > s + 30 for n, s in zip(self.frames(), since, strict=True))
