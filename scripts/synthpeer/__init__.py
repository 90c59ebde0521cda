"""The synthetic classroom peer shared by integration tests, load test and benchmarks.

The media half (`media`, `sink`, `client`) is independent of aiohttp: pre-encoded media
sources, cheap counting sinks, and `MediaClient`, the two aiortc peer connections of one
participant, driven by whatever signalling carries their offers and answers.
"""
