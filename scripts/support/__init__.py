"""Infrastructure the tests and the benchmarks share (installed with ``scripts``).

- `forwarding`: who consumes what on a bare `sfu.Router` (everyone gets everyone).
- `loopback`: an in-process room of real aiortc clients on loopback.
- `nx27017`: a throw-away nx-27017 server (MongoDB wire protocol) for the store tests.
"""
