"""Public documents and the operator surface: keys, this document, health, ICE servers,
metrics and the WebSocket upgrade."""

from __future__ import annotations

from typing import Any

from .. import errors
from .schema import AUTH, failures, op, success

_ICE_SERVER = {
    "type": "object",
    "required": ["urls"],
    "properties": {
        "urls": {"type": "array", "items": {"type": "string"}},
        "username": {"type": "string", "description": "<expiry-unix>:<userId>"},
        "credential": {"type": "string", "description": "base64(HMAC-SHA1(secret, username))"},
    },
}

_PRESENCE_BUFFER = {
    "type": "object",
    "required": ["pending", "oldestSeconds", "merged", "dropped", "failed"],
    "properties": {
        "pending": {"type": "integer", "description": "writes not stored yet, every room"},
        "oldestSeconds": {
            "type": ["number", "null"],
            "description": "how long the oldest of them has waited",
        },
        "merged": {"type": "integer", "description": "reconnects merged by a full buffer"},
        "dropped": {"type": "integer", "description": "writes a full buffer gave up"},
        "failed": {"type": "integer", "description": "writes the store refused (logged)"},
    },
}


_NODE = {
    "type": "object",
    "description": "a node of the cluster (cluster mode only), as its heartbeat says",
    "properties": {
        "nodeId": {"type": "string"},
        "httpUrl": {"type": "string"},
        "iceAddresses": {"type": "array", "items": {"type": "string"}},
        "region": {"type": ["string", "null"]},
        "cores": {"type": "integer"},
        "cpu": {"type": "number", "description": "cores in use"},
        "load": {"type": "number", "description": "cpu / cores"},
        "rooms": {"type": "integer"},
        "participants": {"type": "integer"},
        "draining": {"type": "boolean"},
    },
}


def meta_paths() -> dict[str, Any]:
    return {
        "/.well-known/jwks.json": {
            "get": op(
                "Public keys of local tokens", {"200": {"description": "JWKS"}}, secured=False
            )
        },
        "/openapi.json": {
            "get": op("This document", {"200": {"description": "OpenAPI"}}, secured=False)
        },
        "/health": {
            "get": op(
                "Liveness and load: status overloaded while new room joins are refused",
                success(
                    "200",
                    {
                        "type": "object",
                        "required": [
                            "status",
                            "eventLoopLagMs",
                            "store",
                            "sockets",
                            "media",
                            "presenceBuffer",
                        ],
                        "properties": {
                            "status": {"enum": ["ok", "overloaded"]},
                            "eventLoopLagMs": {"type": "number"},
                            "store": {"enum": ["sqlite", "mongodb"]},
                            "sockets": {"type": "integer"},
                            "media": {"type": "object"},
                            "presenceBuffer": _PRESENCE_BUFFER,
                            "node": _NODE,
                            "cluster": {
                                "type": "object",
                                "properties": {
                                    "redis": {"type": "string"},
                                    "seenSecondsAgo": {"type": ["number", "null"]},
                                    "nodes": {"type": "array", "items": _NODE},
                                },
                            },
                        },
                    },
                    "eventLoopLagMs: the event loop's median lag over the last 3 s; "
                    "presenceBuffer: presence writes waiting for the store (docs/attendance.md); "
                    "node, cluster: in cluster mode (REDIS_URL), this node and the live nodes "
                    "it sees (docs/deploy.md)",
                ),
                secured=False,
            )
        },
        "/ready": {
            "get": op(
                "Readiness: 503 while the node drains before it stops (cluster mode)",
                {
                    **success(
                        "200",
                        {
                            "type": "object",
                            "required": ["ready"],
                            "properties": {"ready": {"const": True}},
                        },
                        "the node takes new clients and rooms",
                    ),
                    **failures((503, errors.DRAINING)),
                },
                secured=False,
            )
        },
        "/ice-servers": {
            "get": op(
                "STUN/TURN servers for RTCPeerConnection, with a fresh TURN credential of mine",
                {
                    **success(
                        "200",
                        {
                            "type": "object",
                            "required": ["iceServers", "ttl"],
                            "properties": {
                                "iceServers": {"type": "array", "items": _ICE_SERVER},
                                "ttl": {"type": ["integer", "null"]},
                            },
                        },
                        "ttl: seconds the TURN credential can start allocations (null: no TURN)",
                    ),
                    **failures(AUTH),
                },
            )
        },
        "/metrics": {
            "get": {
                "summary": "Server metrics in Prometheus text format (operators)",
                "description": (
                    "With METRICS_TOKEN set, send Authorization: Bearer <METRICS_TOKEN>; "
                    "without it, only loopback clients may scrape. 404 when METRICS_ENABLED "
                    "is false."
                ),
                "security": [{"metricsToken": []}, {}],
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition (OpenMetrics if accepted)",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **failures(
                        (401, errors.METRICS_UNAUTHORIZED),
                        (403, errors.METRICS_LOOPBACK_ONLY),
                        (404, "Not found"),
                    ),
                },
            }
        },
        "/ws": {
            "get": op(
                "The class WebSocket (token in ?token=, optional ?classId=)",
                {
                    "101": {"description": "Switching protocols"},
                    **failures((400, errors.WS_UPGRADE_REQUIRED)),
                },
                params=[
                    {
                        "name": "token",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "classId",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                ],
                secured=False,
            )
        },
    }
