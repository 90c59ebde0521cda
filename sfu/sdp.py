"""SDP decisions as pure functions: validate offers, pick codecs, rewrite addresses.

Everything here works on SDP text and aiortc's SDP model, with no peer connection, so
it is tested without a network.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from aiortc import sdp as aiortc_sdp

from sfu.codecs import ForwardCodec, choose_codec, rtx_for
from sfu.errors import InvalidSdp
from sfu.ids import MediaKind

ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
SENDING_DIRECTIONS = ("sendonly", "sendrecv")


def parse(sdp: str) -> aiortc_sdp.SessionDescription:
    """Parse SDP text, turning any parser failure into `InvalidSdp`."""
    if not isinstance(sdp, str) or not sdp.strip():
        raise InvalidSdp("SDP is empty")
    if not sdp.lstrip().startswith("v="):
        raise InvalidSdp("SDP must start with a v= line")
    try:
        return aiortc_sdp.SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises asserts, ValueError, KeyError...
        raise InvalidSdp(f"SDP cannot be parsed: {type(exc).__name__}: {exc}") from None


def share_bundle_candidates(description: aiortc_sdp.SessionDescription) -> int:
    """Give every bundled m-section the candidates of the first one; returns how many
    sections were filled in.

    With ``max-bundle`` Chromium lists its candidates in the first m-section only, while
    aiortc 1.16's `setRemoteDescription` adds the candidates of the *last* section of a
    bundle to the shared transport: without this, the SDP's candidates are lost and only
    trickled ones count. Sections that list candidates of their own are left alone.
    """
    bundle = next((g for g in description.group if g.semantic == "BUNDLE"), None)
    if bundle is None or len(bundle.items) < 2:
        return 0
    by_mid = {str(m.rtp.muxId): m for m in description.media if m.rtp.muxId is not None}
    first = by_mid.get(str(bundle.items[0]))
    if first is None or not (first.ice_candidates or first.ice_candidates_complete):
        return 0
    filled = 0
    for mid in bundle.items[1:]:
        media = by_mid.get(str(mid))
        if media is None or media.ice_candidates:
            continue
        media.ice_candidates = [copy.copy(c) for c in first.ice_candidates]
        media.ice_candidates_complete = media.ice_candidates_complete or (
            first.ice_candidates_complete
        )
        filled += 1
    return filled


def check_transport(description: aiortc_sdp.SessionDescription, kind_of: str) -> None:
    """The checks aiortc makes late (mid-way through applying an SDP), made up front."""
    for index, media in enumerate(description.media):
        where = f"{kind_of} m-section {index} ({media.kind})"
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise InvalidSdp(f"{where} has no ICE username fragment or password")
        if media.dtls is None or not media.dtls.fingerprints:
            raise InvalidSdp(f"{where} has no DTLS fingerprint or setup attribute")
        if media.kind in ("audio", "video"):
            if not media.rtcp_mux:
                raise InvalidSdp(f"{where} does not use rtcp-mux")
            if not media.rtp.muxId:
                raise InvalidSdp(f"{where} has no a=mid")


@dataclass(frozen=True)
class PublishedMedia:
    """One audio/video m-section of a publisher's offer, after codec selection."""

    mid: str
    kind: MediaKind
    sending: bool
    """The publisher sends media in this section (direction sendonly/sendrecv, port != 0)."""
    codec: ForwardCodec | None
    """The forwardable codec kept in the offer; `None` when the section is not sending."""


@dataclass(frozen=True)
class PublishPlan:
    """A publisher's offer reduced to what we forward, and the per-mid decisions."""

    sdp: str
    media: dict[str, PublishedMedia]


def plan_publish(offer_sdp: str, video_codecs: Sequence[str], remb: bool = True) -> PublishPlan:
    """Validate a publish offer and keep one forwardable codec per sending m-section.

    The publisher then has no choice but to send what subscribers can receive as is.
    Without `remb`, the abs-send-time extension is dropped (no bandwidth estimation).
    Raises `InvalidSdp` with a message naming the offending section.
    """
    description = parse(offer_sdp)
    check_transport(description, "offer")
    share_bundle_candidates(description)
    media: dict[str, PublishedMedia] = {}
    for index, section in enumerate(description.media):
        if section.kind not in ("audio", "video"):
            continue
        kind: MediaKind = "audio" if section.kind == "audio" else "video"
        mid = str(section.rtp.muxId)
        if not remb:
            section.rtp.headerExtensions = [
                x for x in section.rtp.headerExtensions if x.uri != ABS_SEND_TIME_URI
            ]
        if mid in media:
            raise InvalidSdp(f"offer m-section {index} repeats mid {mid!r}")
        sending = section.port != 0 and (section.direction or "sendrecv") in SENDING_DIRECTIONS
        chosen = choose_codec(kind, section.rtp.codecs, video_codecs)
        if chosen is None:
            if sending:
                offered = ", ".join(sorted({c.name for c in section.rtp.codecs})) or "none"
                wanted = "Opus" if kind == "audio" else " or ".join(video_codecs)
                raise InvalidSdp(
                    f"offer m-section {index} ({kind}) offers {offered}; the server forwards "
                    f"{wanted} only"
                )
            media[mid] = PublishedMedia(mid, kind, False, None)
            continue
        remote, forward = chosen
        keep = [remote]
        rtx = rtx_for(section.rtp.codecs, remote.payloadType) if kind == "video" else None
        if rtx is not None:
            keep.append(rtx)
        section.rtp.codecs = keep
        section.fmt = [c.payloadType for c in keep]
        media[mid] = PublishedMedia(mid, kind, sending, forward if sending else None)
    return PublishPlan(sdp=str(description), media=media)


def check_answer(answer_sdp: str) -> str:
    """Validate a subscriber's answer before it is applied; returns the SDP to apply
    (bundled sections share the first one's candidates, see `share_bundle_candidates`)."""
    description = parse(answer_sdp)
    check_transport(description, "answer")
    for index, media in enumerate(description.media):
        if media.dtls is not None and media.dtls.role not in ("client", "server"):
            raise InvalidSdp(f"answer m-section {index} must have a=setup:active or passive")
    return str(description) if share_bundle_candidates(description) else answer_sdp


def strip_header_extension(sdp: str, uri: str) -> str:
    """Drop one RTP header extension from an SDP of ours (e.g. abs-send-time).

    Subscribers need no abs-send-time: their REMB cannot change forwarded media, and
    the extension costs work on every packet on both ends.
    """
    suffix = " " + uri
    lines = [
        line
        for line in sdp.split("\r\n")
        if not (line.startswith("a=extmap:") and line.endswith(suffix))
    ]
    return "\r\n".join(lines)


def announce_address(
    sdp: str, local_addresses: Collection[str] | None, announced: str | None
) -> str:
    """Replace our bound host addresses by the announced one (1:1 NAT).

    Rewrites ``c=`` lines and host candidates whose address is one of
    `local_addresses` (`None`: any address); everything else is left as is.
    """
    if announced is None:
        return sdp

    def ours(address: str) -> bool:
        if local_addresses is None:
            return address not in ("0.0.0.0", "::")
        return address in local_addresses

    version = "IP6" if ":" in announced else "IP4"
    out = []
    for line in sdp.split("\r\n"):
        if line.startswith("c=IN "):
            parts = line.split(" ")
            if len(parts) == 3 and ours(parts[2]):
                line = f"c=IN {version} {announced}"
        elif line.startswith("a=candidate:"):
            parts = line.split(" ")
            if len(parts) >= 8 and parts[7] == "host" and ours(parts[4]):
                parts[4] = announced
                line = " ".join(parts)
        out.append(line)
    return "\r\n".join(out)


@dataclass(frozen=True)
class MediaSection:
    """What a client needs from one m-section of an offer to label its tracks."""

    mid: str
    kind: str
    direction: str
    port: int
    codec: str | None
    """Name of the first codec (e.g. ``"VP8"``, ``"opus"``)."""
    stream_id: str | None
    track_id: str | None


def media_sections(sdp: str) -> list[MediaSection]:
    """The audio/video m-sections of an SDP with their msid (stream id, track id)."""
    sections = []
    for media in parse(sdp).media:
        if media.kind not in ("audio", "video"):
            continue
        stream_id = track_id = None
        if media.msid:
            bits = media.msid.split()
            stream_id = bits[0]
            track_id = bits[1] if len(bits) > 1 else None
        sections.append(
            MediaSection(
                mid=str(media.rtp.muxId),
                kind=media.kind,
                direction=media.direction or "sendrecv",
                port=media.port,
                codec=media.rtp.codecs[0].name if media.rtp.codecs else None,
                stream_id=stream_id,
                track_id=track_id,
            )
        )
    return sections
