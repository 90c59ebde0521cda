"""RTCP for the direct send path (RFC 3550 §6.4), with `struct`.

Sender reports: one compound packet carries the reports of many m-sections of a
connection, sender reports first, then one SDES packet with every source's CNAME (RFC
3550 §6.1), split so that a compound stays well under the path MTU.

Receiver reports: `receiver_report_blocks` reads the report blocks of a compound that
holds nothing but RR and SDES packets (what subscribers send about once a second per
stream), so that those need not go through aiortc's RTCP objects.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

from aiortc.rtp import RtcpSdesPacket, RtcpSourceInfo

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_PSFB = 206
PSFB_APPLICATION = 15
"""Payload-specific feedback of format 15: application layer (REMB)."""
SDES_CNAME = 1
NTP_EPOCH_OFFSET = 2208988800
"""Seconds from 1900 (NTP's epoch) to 1970."""
SENDERS_PER_COMPOUND = 16
"""16 reports (28 bytes each) and their CNAME chunks stay under ~900 bytes."""

_SR = struct.Struct("!BBHIQIII")
_HEADER = struct.Struct("!BBH")
_REPORT_BLOCK = struct.Struct("!IIIIII")
_RR_FIRST_BLOCK = 8  # header and reporter SSRC
_PSFB_FCI = 12  # header, sender SSRC, media SSRC
_SR_LENGTH_WORDS = _SR.size // 4 - 1
_VERSION_2 = 0x80
_U32 = 0xFFFFFFFF


class SenderReport(NamedTuple):
    """What one source's sender report says."""

    ssrc: int
    cname: str
    ntp: int
    """64-bit NTP timestamp of the report."""
    rtp_timestamp: int
    """The RTP timestamp that corresponds to `ntp` on this source's clock."""
    packets: int
    octets: int


def ntp_timestamp(unix_time: float) -> int:
    """A Unix time as a 64-bit NTP timestamp (32.32 fixed point since 1900)."""
    now = unix_time + NTP_EPOCH_OFFSET
    seconds = int(now)
    return (seconds << 32) | int((now - seconds) * 4294967296.0)


def last_sr(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: how a receiver report refers back to it."""
    return (ntp >> 16) & _U32


def pack_sender_report(report: SenderReport) -> bytes:
    """One SR packet without report blocks."""
    return _SR.pack(
        _VERSION_2,
        RTCP_SR,
        _SR_LENGTH_WORDS,
        report.ssrc,
        report.ntp,
        report.rtp_timestamp & _U32,
        report.packets & _U32,
        report.octets & _U32,
    )


def compound_packets(reports: Sequence[SenderReport]) -> list[bytes]:
    """Compound RTCP packets (SRs, then one SDES with the CNAMEs) for `reports`."""
    compounds = []
    for start in range(0, len(reports), SENDERS_PER_COMPOUND):
        group = reports[start : start + SENDERS_PER_COMPOUND]
        sdes = RtcpSdesPacket(
            chunks=[
                RtcpSourceInfo(ssrc=r.ssrc, items=[(SDES_CNAME, r.cname.encode())])
                for r in group
                if r.cname
            ]
        )
        body = b"".join(pack_sender_report(r) for r in group)
        compounds.append(body + bytes(sdes) if sdes.chunks else body)
    return compounds


class ReportBlock(NamedTuple):
    """One reception report block (RFC 3550 §6.4.1): how a receiver sees one source."""

    ssrc: int
    fraction_lost: float
    """Share of the source's packets lost since the previous report (0..1)."""
    packets_lost: int
    """Cumulative number of packets lost (may be negative with duplicates)."""
    highest_sequence: int
    jitter: int
    """Interarrival jitter, in the source's RTP clock units."""
    lsr: int
    """Middle 32 bits of the NTP timestamp of the last SR received (0: none yet)."""
    dlsr: int
    """Delay since that SR, in 1/65536 s."""


class Feedback(NamedTuple):
    """What a subscriber's compound RTCP packet says that the direct send path reads."""

    blocks: list[ReportBlock]
    remb: int | None
    """The REMB bitrate (bit/s) it carries for our streams, if any."""


def receiver_report_blocks(data: bytes) -> list[ReportBlock] | None:
    """The report blocks of a compound RTCP packet made of RR and SDES packets only;
    None when it holds anything else (SR, BYE, feedback...) or is malformed."""
    feedback = read_feedback(data)
    if feedback is None or feedback.remb is not None:
        return None
    return feedback.blocks


def read_feedback(data: bytes) -> Feedback | None:
    """The report blocks and REMB of a compound RTCP packet made of RR, SDES and REMB
    packets only (what subscribers send about once a second); None when it holds
    anything else (SR, BYE, NACK, PLI...) or is malformed."""
    blocks: list[ReportBlock] = []
    remb: int | None = None
    pos = 0
    size = len(data)
    while pos < size:
        if size - pos < _HEADER.size:
            return None
        first, packet_type, length = _HEADER.unpack_from(data, pos)
        end = pos + (length + 1) * 4
        if first >> 6 != 2 or end > size:
            return None
        if packet_type == RTCP_RR:
            count = first & 0x1F
            if _RR_FIRST_BLOCK + count * _REPORT_BLOCK.size > end - pos:
                return None
            for index in range(count):
                ssrc, lost, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(
                    data, pos + _RR_FIRST_BLOCK + index * _REPORT_BLOCK.size
                )
                cumulative = lost & 0xFFFFFF
                if cumulative & 0x800000:
                    cumulative -= 0x1000000
                blocks.append(
                    ReportBlock(ssrc, (lost >> 24) / 256, cumulative, highest, jitter, lsr, dlsr)
                )
        elif packet_type == RTCP_PSFB and first & 0x1F == PSFB_APPLICATION:
            bitrate = remb_bitrate(data[pos + _PSFB_FCI : end])
            if bitrate is None:
                return None
            remb = bitrate
        elif packet_type != RTCP_SDES:
            return None
        pos = end
    return Feedback(blocks, remb)


def remb_bitrate(fci: bytes) -> int | None:
    """The bitrate of a REMB feedback control information block (draft-alvestrand-rmcat-
    remb: "REMB", SSRC count, 6-bit exponent, 18-bit mantissa); None if it is not one."""
    if len(fci) < 8 or fci[:4] != b"REMB":
        return None
    exponent = fci[5] >> 2
    mantissa = ((fci[5] & 0x03) << 16) | (fci[6] << 8) | fci[7]
    return mantissa << exponent
