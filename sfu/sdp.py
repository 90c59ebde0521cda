"""SDP decisions as pure functions: validate offers, pick codecs, rewrite addresses.

Everything here works on SDP text and aiortc's SDP model, with no peer connection, so
it is tested without a network.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from aiortc import sdp as aiortc_sdp

from sfu.codecs import ForwardCodec, choose_codec, rtx_for
from sfu.errors import InvalidSdp
from sfu.ids import DEFAULT_SOURCE, SOURCE_KIND, TOP_LAYER, MediaKind, TrackSource

ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
SENDING_DIRECTIONS = ("sendonly", "sendrecv")


def parse(sdp: str) -> aiortc_sdp.SessionDescription:
    """Parse SDP text, turning any parser failure into `InvalidSdp`."""
    if not isinstance(sdp, str) or not sdp.strip():
        raise InvalidSdp.about_input("SDP is empty")
    if not sdp.lstrip().startswith("v="):
        raise InvalidSdp.about_input("SDP must start with a v= line")
    try:
        return aiortc_sdp.SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises asserts, ValueError, KeyError...
        raise InvalidSdp(
            f"SDP cannot be parsed: {type(exc).__name__}: {exc}", reason="SDP cannot be parsed"
        ) from None


def share_bundle_candidates(description: aiortc_sdp.SessionDescription) -> int:
    """Give the last bundled m-section the candidates of the first one; returns how many
    sections were filled in (0 or 1). For SDP the server receives and applies.

    With ``max-bundle`` Chromium lists its candidates in the first m-section only, while
    aiortc 1.16's `setRemoteDescription` adds the candidates of the *last* section of a
    bundle to the shared transport (the server's connections are ``max-bundle``):
    without this, the SDP's candidates are lost and only trickled ones count. The
    sections between need none (aiortc reads only the last one's), and a section that
    lists candidates of its own is left alone.
    """
    bundle = next((g for g in description.group if g.semantic == "BUNDLE"), None)
    if bundle is None or len(bundle.items) < 2:
        return 0
    by_mid = {str(m.rtp.muxId): m for m in description.media if m.rtp.muxId is not None}
    first = by_mid.get(str(bundle.items[0]))
    last = by_mid.get(str(bundle.items[-1]))
    if first is None or not (first.ice_candidates or first.ice_candidates_complete):
        return 0
    if last is None or last is first or last.ice_candidates:
        return 0
    last.ice_candidates = [copy.copy(c) for c in first.ice_candidates]
    last.ice_candidates_complete = last.ice_candidates_complete or first.ice_candidates_complete
    return 1


def _with_shared_candidates(sdp: str, description: aiortc_sdp.SessionDescription) -> str:
    """`sdp` as aiortc needs it (`share_bundle_candidates`), rewriting as little as
    possible: when the section to fill is the last one, the first section's candidate
    lines are appended to the text (re-serializing 60 m-sections costs ~2 ms)."""
    if not share_bundle_candidates(description):
        return sdp
    lines = sdp.split("\r\n")
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    last_mid = description.media[-1].rtp.muxId
    bundle = next(g for g in description.group if g.semantic == "BUNDLE")
    if len(starts) != len(description.media) or str(bundle.items[-1]) != str(last_mid):
        return str(description)
    first = next(i for i, m in enumerate(description.media) if m.rtp.muxId == bundle.items[0])
    section = lines[starts[first] : starts[first + 1]]  # first < last: it has candidates
    candidates = [line for line in section if line.startswith(_CANDIDATE_PREFIXES)]
    tail = 1 if lines[-1] == "" else 0
    end = len(lines) - tail
    return "\r\n".join(lines[:end] + candidates + lines[end:])


_TRANSPORT_PREFIXES = ("a=ice-ufrag:", "a=ice-pwd:", "a=ice-options:", "a=fingerprint:", "a=setup:")
_CANDIDATE_PREFIXES = ("a=candidate:", "a=end-of-candidates")


def compact_bundle(sdp: str) -> str:
    """An equivalent, shorter SDP for m-sections bundled on one transport.

    aiortc repeats the ICE credentials, three DTLS fingerprints and every candidate in
    each m-section: about 600 bytes per track, which would put a large room's subscribe
    SDP over the WebSocket frame limit. When every m-section carries the same
    ``ice-ufrag``/``ice-pwd``/``ice-options``/``fingerprint``/``setup`` lines they move to
    the session level, which every m-section inherits (RFC 8839, 8122 and 4145 allow them
    there; one fingerprint, the sha-256 one). Candidates can only be listed per
    m-section; they are kept where receivers read them (`candidate_sections`) and
    dropped from the sections between. Anything that is not one bundle on one transport
    is returned as is.
    """
    lines = sdp.split("\r\n")
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    if len(starts) < 2:
        return sdp
    session = lines[: starts[0]]
    if any(line.startswith(_TRANSPORT_PREFIXES) for line in session):
        return sdp
    group = next((line for line in session if line.startswith("a=group:BUNDLE ")), None)
    bundled = group.split()[1:] if group is not None else []
    if len(bundled) < 2:
        return sdp
    ends = [*starts[1:], len(lines)]
    sections = [lines[start:end] for start, end in zip(starts, ends, strict=True)]
    transports = [[line for line in s if line.startswith(_TRANSPORT_PREFIXES)] for s in sections]
    if not transports[0] or any(t != transports[0] for t in transports[1:]):
        return sdp
    mids = [next((line[6:] for line in s if line.startswith("a=mid:")), None) for s in sections]
    if bundled[0] not in mids or any(mid not in bundled for mid in mids):
        return sdp
    tail: list[str] = []
    if sections[-1] and sections[-1][-1] == "":
        tail = [sections[-1].pop()]
    kinds = [s[0][2:].split(" ", 1)[0] for s in sections]
    tag = mids.index(bundled[0])
    candidates = [line for line in sections[tag] if line.startswith(_CANDIDATE_PREFIXES)]
    readers = candidate_sections(kinds, tag)
    out = session + _one_fingerprint(transports[0])
    for index, section in enumerate(sections):
        for line in section:
            if line.startswith(_TRANSPORT_PREFIXES):
                continue
            if index != tag and line.startswith(_CANDIDATE_PREFIXES):
                continue
            out.append(line)
        if index != tag and index in readers:
            out.extend(candidates)
    return "\r\n".join(out + tail)


def candidate_sections(kinds: Sequence[str], tag: int) -> set[int]:
    """The m-sections of one bundle (their media kinds, in SDP order) that list its
    candidates, `tag` being the index of the BUNDLE-tagged one (the first mid of
    ``a=group:BUNDLE``).

    - The tagged m-section: RFC 8843 applies its transport to the whole bundle; Chromium
      and Firefox read the candidates there.
    - The last m-section, and the last one of the tagged section's kind: stock aiortc
      1.16's `setRemoteDescription` keeps, per transport it made, the candidates of the
      last m-section it put on that transport, then keeps the tagged section's transport
      only. With ``max-bundle`` every section is on that transport; with the default
      ``balanced`` policy only those of the tagged section's kind are.
    """
    last_of_kind = max(i for i, kind in enumerate(kinds) if kind == kinds[tag])
    return {tag, last_of_kind, len(kinds) - 1}


def _one_fingerprint(transport: list[str]) -> list[str]:
    """Keep the sha-256 fingerprint (else the first): Chromium refuses several at one
    level, and one is all a DTLS peer checks against."""
    fingerprints = [line for line in transport if line.startswith("a=fingerprint:")]
    keep = next((f for f in fingerprints if f.startswith("a=fingerprint:sha-256 ")), None)
    keep = keep or (fingerprints[0] if fingerprints else None)
    return [line for line in transport if not line.startswith("a=fingerprint:") or line == keep]


def check_transport(description: aiortc_sdp.SessionDescription, kind_of: str) -> None:
    """The checks aiortc makes late (mid-way through applying an SDP), made up front."""
    for index, media in enumerate(description.media):
        where = f"{kind_of} m-section {index} ({media.kind})"
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise InvalidSdp.about_input(f"{where} has no ICE username fragment or password")
        if media.dtls is None or not media.dtls.fingerprints:
            raise InvalidSdp.about_input(f"{where} has no DTLS fingerprint or setup attribute")
        if media.kind in ("audio", "video"):
            if not media.rtcp_mux:
                raise InvalidSdp.about_input(f"{where} does not use rtcp-mux")
            if not media.rtp.muxId:
                raise InvalidSdp.about_input(f"{where} has no a=mid")


@dataclass(frozen=True)
class TrackSpec:
    """What the publisher says one of its m-sections carries."""

    source: TrackSource
    layer: int = TOP_LAYER
    """0 for the lowest layer of a source published in several tracks."""


@dataclass(frozen=True)
class PublishedMedia:
    """One audio/video m-section of a publisher's offer, after codec selection."""

    mid: str
    kind: MediaKind
    sending: bool
    """The publisher sends media in this section (direction sendonly/sendrecv, port != 0)."""
    codec: ForwardCodec | None
    """The forwardable codec kept in the offer; `None` when the section is not sending."""
    source: TrackSource = "camera"
    layer: int = TOP_LAYER


@dataclass(frozen=True)
class PublishPlan:
    """A publisher's offer reduced to what we forward, and the per-mid decisions."""

    sdp: str
    media: dict[str, PublishedMedia]


MAX_PUBLISH_SECTIONS = 8
"""m-sections a publish offer may have: a microphone, two camera layers and a screen (and
its sound) fit several times over; each one costs the server a transceiver."""


def plan_publish(
    offer_sdp: str,
    video_codecs: Sequence[str],
    remb: bool = True,
    tracks: Mapping[str, TrackSpec] | None = None,
) -> PublishPlan:
    """Validate a publish offer and keep one forwardable codec per sending m-section.

    The publisher then has no choice but to send what subscribers can receive as is.
    Without `remb`, the abs-send-time extension is dropped (no bandwidth estimation).
    `tracks` names the source (and layer) of m-sections by mid; the others carry
    `DEFAULT_SOURCE` of their kind. Sending sections must not share a source and layer,
    and the layers of one source must have one codec. Raises `InvalidSdp` with a
    message naming the offending section.
    """
    tracks = tracks or {}
    sections = offer_sdp.count("\nm=") + offer_sdp.startswith("m=")
    if sections > MAX_PUBLISH_SECTIONS:  # counted before parsing: bounded work per offer
        raise InvalidSdp.about_input(
            f"the offer has {sections} m-sections, more than {MAX_PUBLISH_SECTIONS}"
        )
    description = parse(offer_sdp)
    if not any(section.kind in ("audio", "video") for section in description.media):
        # It would be "applied", then fail at the connect deadline with nothing to say why.
        raise InvalidSdp.about_input("the offer has no audio or video m-section")
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
            raise InvalidSdp.about_input(f"offer m-section {index} repeats mid {mid!r}")
        sending = section.port != 0 and (section.direction or "sendrecv") in SENDING_DIRECTIONS
        chosen = choose_codec(kind, section.rtp.codecs, video_codecs)
        if chosen is None:
            if sending:
                offered = ", ".join(sorted({c.name for c in section.rtp.codecs})) or "none"
                wanted = "Opus" if kind == "audio" else " or ".join(video_codecs)
                raise InvalidSdp.about_input(
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
        spec = tracks.get(mid) or TrackSpec(DEFAULT_SOURCE[kind])
        if SOURCE_KIND[spec.source] != kind:
            raise InvalidSdp.about_input(
                f"offer m-section {index} ({kind}) is named {spec.source}, "
                f"which is {SOURCE_KIND[spec.source]}"
            )
        media[mid] = PublishedMedia(
            mid, kind, sending, forward if sending else None, spec.source, spec.layer
        )
    unknown = sorted(set(tracks) - set(media))
    if unknown:
        raise InvalidSdp.about_input(
            f"tracks names mid {unknown[0]!r}, which is not an audio or video m-section "
            "of the offer"
        )
    _check_sources(media)
    return PublishPlan(sdp=str(description), media=media)


def _check_sources(media: Mapping[str, PublishedMedia]) -> None:
    """One sending section per (source, layer); one codec per source."""
    taken: dict[tuple[str, int], str] = {}
    codecs: dict[str, PublishedMedia] = {}
    for mid, section in media.items():
        if not section.sending or section.codec is None:
            continue
        key = (section.source, section.layer)
        if key in taken:
            raise InvalidSdp.about_input(
                f"m-sections with mid {taken[key]!r} and {mid!r} are both {section.source} "
                f"layer {section.layer}"
            )
        taken[key] = mid
        first = codecs.setdefault(section.source, section)
        if first.codec is not None and first.codec.key != section.codec.key:
            raise InvalidSdp.about_input(
                f"the {section.source} layers of mid {first.mid!r} and {mid!r} must use one "
                f"codec, not {first.codec.name} and {section.codec.name}"
            )


def check_answer(answer_sdp: str) -> str:
    """Validate a subscriber's answer before it is applied; returns the SDP to apply
    (the last bundled section gets the first one's candidates, see
    `share_bundle_candidates`)."""
    description = parse(answer_sdp)
    check_transport(description, "answer")
    for index, media in enumerate(description.media):
        if media.dtls is not None and media.dtls.role not in ("client", "server"):
            raise InvalidSdp.about_input(
                f"answer m-section {index} must have a=setup:active or passive"
            )
    return _with_shared_candidates(answer_sdp, description)


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
