"""The class WebSocket: the endpoint, connections, event routing and the event handlers."""
