"""Control plane of the classroom SFU: HTTP API, WebSocket signalling, rooms and attendance."""
