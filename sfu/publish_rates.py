"""What a publisher sends, measured from the frames a producer admits: bit rate, frame
rate, and the share of both that each number of VP8 temporal layers makes."""

from __future__ import annotations

from collections.abc import Sequence

RATE_WINDOW = 1.0
"""Seconds over which the rates are measured."""
MAX_TEMPORAL_LAYERS = 4
"""What the VP8 descriptor's 2-bit TID can name."""
_TEMPORAL_MEMORY = 3.0  # seconds a temporal layer counts as sent after its last frame


class PublishRates:
    """Rates of one producer's admitted frames, measured once per `RATE_WINDOW` from the
    running totals it is given (`measure`) and the frames counted per temporal layer
    (`count`)."""

    __slots__ = (
        "_bitrate",
        "_frame_rate",
        "_rate_bytes",
        "_rate_frames",
        "_shares",
        "_since",
        "_temporal_bytes",
        "_temporal_frames",
        "_temporal_seen_at",
    )

    def __init__(self, now: float) -> None:
        self._since = now
        self._rate_bytes = 0
        self._rate_frames = 0
        self._bitrate = 0.0
        self._frame_rate = 0.0
        # Bytes and frames per temporal layer over the window, and what share of the
        # rate and the frame rate each number of temporal layers made in the last.
        self._temporal_bytes = [0] * MAX_TEMPORAL_LAYERS
        self._temporal_frames = [0] * MAX_TEMPORAL_LAYERS
        self._shares: tuple[tuple[float, float], ...] = ((1.0, 1.0),)
        self._temporal_seen_at = [float("-inf")] * MAX_TEMPORAL_LAYERS

    def bitrate(self, last_frame_at: float | None, now: float) -> float:
        """Bit/s of payload over the last window or two; 0 once frames stopped."""
        if last_frame_at is None or now - last_frame_at > 2 * RATE_WINDOW:
            return 0.0
        return self._bitrate

    def frame_rate(self, last_frame_at: float | None, now: float) -> float:
        """Frames per second over the last window; 0 once frames stopped."""
        if last_frame_at is None or now - last_frame_at > 2 * RATE_WINDOW:
            return 0.0
        return self._frame_rate

    @property
    def temporal_layers(self) -> int:
        """How many temporal layers the publisher sends (1: none), as last measured."""
        return len(self._shares)

    def temporal_share(self, max_layer: int) -> tuple[float, float]:
        """The share of the bit rate and of the frame rate that temporal layers 0 to
        `max_layer` make (1.0 each at or above the top layer)."""
        shares = self._shares
        return shares[min(max(max_layer, 0), len(shares) - 1)]

    def count(self, layer: int, size: int) -> None:
        """One forwarded frame of temporal layer `layer`."""
        self._temporal_bytes[layer] += size
        self._temporal_frames[layer] += 1

    def count_many(self, frames: Sequence[int], sizes: Sequence[int]) -> None:
        """Frames and bytes forwarded per temporal layer (index: the layer)."""
        for layer in range(MAX_TEMPORAL_LAYERS):
            self._temporal_frames[layer] += frames[layer]
            self._temporal_bytes[layer] += sizes[layer]

    def measure(self, now: float, frames: int, size: int) -> None:
        """Measure when a window has passed; `frames` and `size` are the running totals
        of frames and payload bytes received."""
        if now - self._since < RATE_WINDOW:
            return
        sample = 8 * (size - self._rate_bytes) / (now - self._since)
        # A fresh sample counts fully after a quiet spell, else half (keyframes are bursts).
        fresh = self._bitrate == 0.0 or now - self._since > 2 * RATE_WINDOW
        self._bitrate = sample if fresh else (self._bitrate + sample) / 2
        self._frame_rate = (frames - self._rate_frames) / (now - self._since)
        self._since = now
        self._rate_bytes = size
        self._rate_frames = frames
        self._measure_temporal_shares(now)

    def _measure_temporal_shares(self, now: float) -> None:
        sizes, counts = self._temporal_bytes, self._temporal_frames
        total_bytes, total_frames = sum(sizes), sum(counts)
        if not total_frames:
            return
        seen = self._temporal_seen_at
        for layer, count in enumerate(counts):
            if count:
                seen[layer] = now
        # A slow publisher (a screen share at 5 fps) may leave a layer out of one window.
        top = max(layer for layer, at in enumerate(seen) if now - at <= _TEMPORAL_MEMORY)
        shares = []
        cumulative_bytes = cumulative_frames = 0
        for layer in range(top + 1):
            cumulative_bytes += sizes[layer]
            cumulative_frames += counts[layer]
            shares.append((cumulative_bytes / total_bytes, cumulative_frames / total_frames))
        self._shares = tuple(shares)
        self._temporal_bytes = [0] * MAX_TEMPORAL_LAYERS
        self._temporal_frames = [0] * MAX_TEMPORAL_LAYERS
