"""The side-by-side benchmark behind ``scripts/bench_side_by_side.py``.

`netns` gives the run its own network namespace (Janus needs a non-loopback interface),
`systems` adapts each system under test (our server, our bare Router and aiortc's
MediaRelay through `scripts/bench_server.py`, Janus VideoRoom through `janus`) to one
interface, `measure` drives and measures them all with the same load generator,
`floor` is the per-packet floor, and `report` prints and compares.
"""
