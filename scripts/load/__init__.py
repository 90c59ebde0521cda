"""The load-test tool behind ``scripts/loadtest.py`` (``classroom-loadtest``).

Synthetic classrooms driven through the public API only (REST + class WebSocket +
WebRTC), like the browser page: `population` creates accounts, classes and sessions,
`participant` joins, publishes and churns, `counting` measures what arrives cheaply,
`monitor` samples the server's ``/metrics`` and the probes every second, `summary` and
`plot` report, and `runner` ties them together.
"""
