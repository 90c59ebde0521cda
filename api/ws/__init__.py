"""The class WebSocket: connections, the hub that fans events out, and event handlers."""
