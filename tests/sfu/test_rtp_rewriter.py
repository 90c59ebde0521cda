"""sfu.rtp_rewriter on its own: numbering, wrap-around, source switches, NACK history and
RTX numbering of one outgoing stream (pure logic, no aiortc)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from sfu import rtp_rewriter
from sfu.rtp_rewriter import HISTORY_SIZE, PTS_STEP, PtsRebaser, Resend, RtpRewriter

VIDEO = PTS_STEP["video"]


def frame(count: int, tag: str = "p") -> list[bytes]:
    return [f"{tag}{i}".encode() for i in range(count)]


def test_the_module_imports_nothing_of_aiortc_aioice_or_the_rest_of_sfu() -> None:
    tree = ast.parse(Path(rtp_rewriter.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported <= {"__future__", "random", "collections", "typing"}


def test_packets_of_a_frame_get_consecutive_numbers_and_the_frames_timestamp() -> None:
    rewriter = RtpRewriter(VIDEO, sequence_number=100, timestamp_origin=1000)
    assert rewriter.frame(0, frame(3)) == (100, 1000)
    assert rewriter.frame(3000, frame(2)) == (103, 4000)
    assert rewriter.next_sequence_number == 105


def test_sequence_numbers_wrap_at_16_bits_and_timestamps_at_32() -> None:
    rewriter = RtpRewriter(VIDEO, sequence_number=0xFFFE, timestamp_origin=0xFFFF_FFFF - 1000)
    assert rewriter.frame(0, frame(3)) == (0xFFFE, 0xFFFF_FFFF - 1000)
    assert rewriter.next_sequence_number == 1  # 0xFFFE, 0xFFFF, 0 sent
    assert rewriter.frame(3000, frame(1)) == (1, 1999)
    # A NACK across the wrap finds the right packets.
    assert rewriter.resend(0xFFFF) == Resend(b"p1", 1, 0xFFFF_FFFF - 1000, False)
    assert rewriter.resend(0) == Resend(b"p2", 2, 0xFFFF_FFFF - 1000, True)


def test_initial_values_are_given_or_random_and_always_in_range() -> None:
    rewriter = RtpRewriter(VIDEO, sequence_number=0x1_0005, timestamp_origin=1 << 32)
    assert rewriter.frame(7, frame(1)) == (5, 7)
    drawn = {RtpRewriter(VIDEO).next_sequence_number for _ in range(20)}
    assert len(drawn) > 1 and all(0 <= n < 1 << 15 for n in drawn)


def test_a_source_switch_keeps_numbers_and_timestamps_continuous() -> None:
    rewriter = RtpRewriter(VIDEO, sequence_number=10, timestamp_origin=0)
    rewriter.frame(90_000, frame(2))
    rewriter.frame(93_000, frame(2))
    rewriter.switch_source()
    # The new source stamps its frames from its own (unrelated) clock.
    assert rewriter.frame(5_000_000, frame(3)) == (14, 96_000)
    assert rewriter.frame(5_003_000, frame(1)) == (17, 99_000)  # its spacing is kept
    rewriter.switch_source()
    assert rewriter.frame(12, frame(1)) == (18, 102_000)


def test_a_switch_before_the_first_frame_changes_nothing() -> None:
    rewriter = RtpRewriter(VIDEO, sequence_number=0, timestamp_origin=0)
    rewriter.switch_source()
    assert rewriter.frame(123_456, frame(1)) == (0, 123_456)


def test_timestamps_stay_in_32_bits_across_switches_to_sources_far_behind() -> None:
    rewriter = RtpRewriter(VIDEO, sequence_number=0, timestamp_origin=0xFFFF_F000)
    rewriter.frame(0, frame(1))
    rewriter.switch_source()
    seq, timestamp = rewriter.frame(-(10**12), frame(1))  # a source whose clock is far behind
    assert (seq, timestamp) == (1, (0xFFFF_F000 + VIDEO) & 0xFFFF_FFFF)


def test_a_nack_is_answered_from_the_history_with_payload_position_timestamp_and_marker() -> None:
    rewriter = RtpRewriter(VIDEO, sequence_number=500, timestamp_origin=0)
    first = frame(3, "a")
    rewriter.frame(0, first)
    rewriter.frame(3000, frame(2, "b"))
    assert rewriter.resend(500) == Resend(b"a0", 0, 0, False)
    assert rewriter.resend(502) == Resend(b"a2", 2, 0, True)
    assert rewriter.resend(504) == Resend(b"b1", 1, 3000, True)
    assert rewriter.resend(505) is None  # not sent yet
    assert rewriter.resend(499) is None  # never sent


def test_a_nack_for_a_slot_a_later_frame_took_over_is_not_answered() -> None:
    rewriter = RtpRewriter(VIDEO, sequence_number=0, timestamp_origin=0)
    rewriter.frame(0, frame(3, "old"))
    for i in range(1, HISTORY_SIZE // 2 + 1):  # two packets per frame: slots 3..130 reused
        rewriter.frame(3000 * i, frame(2, f"f{i}"))
    assert rewriter.next_sequence_number == 3 + HISTORY_SIZE
    assert rewriter.resend(0) is None and rewriter.resend(2) is None  # evicted
    newest = rewriter.resend(3 + HISTORY_SIZE - 1)
    assert newest is not None and newest.payload == f"f{HISTORY_SIZE // 2}1".encode()
    oldest_kept = rewriter.resend(3)
    assert oldest_kept is not None and oldest_kept.payload == b"f10"


def test_a_frame_longer_than_the_history_still_answers_its_last_packets() -> None:
    rewriter = RtpRewriter(VIDEO, sequence_number=0, timestamp_origin=0)
    payloads = frame(HISTORY_SIZE + 10)
    rewriter.frame(0, payloads)
    last = len(payloads) - 1
    assert rewriter.resend(last) == Resend(payloads[last], last, 0, True)
    # Its first packets' slots hold the frame's later packets; the numbers map back.
    resent = rewriter.resend(HISTORY_SIZE + 3)
    assert resent is not None and resent.payload == payloads[HISTORY_SIZE + 3]


def test_rtx_packets_are_numbered_in_a_sequence_of_their_own_that_wraps() -> None:
    rewriter = RtpRewriter(VIDEO, sequence_number=10, rtx_sequence_number=0xFFFF)
    rewriter.frame(0, frame(2))
    assert [rewriter.next_rtx_sequence_number() for _ in range(3)] == [0xFFFF, 0, 1]
    assert rewriter.next_sequence_number == 12  # media numbering untouched


@pytest.mark.parametrize("kind", ["video", "audio"])
def test_the_pts_rebaser_alone_keeps_a_reused_track_continuous(kind: str) -> None:
    step = PTS_STEP[kind]
    rebaser = PtsRebaser(step)
    assert [rebaser.rebase(pts) for pts in (1000, 1000 + step)] == [1000, 1000 + step]
    rebaser.switch_source()
    assert rebaser.rebase(77) == 1000 + 2 * step
    assert rebaser.rebase(77 + 5 * step) == 1000 + 7 * step


def test_after_a_keyframe_nothing_sent_before_it_is_resent() -> None:
    rewriter = RtpRewriter(3000, sequence_number=0xFFFE, timestamp_origin=0)
    rewriter.frame(0, [b"old-a", b"old-b"])  # 0xFFFE, 0xFFFF
    rewriter.frame(3000, [b"key-a", b"key-b"], keyframe=True)  # 0, 1 (wrapped)
    rewriter.frame(6000, [b"delta"])  # 2
    assert rewriter.resend(0xFFFE) is None and rewriter.resend(0xFFFF) is None
    key = rewriter.resend(0)
    assert key is not None and key.payload == b"key-a"
    delta = rewriter.resend(2)
    assert delta is not None and delta.payload == b"delta"
