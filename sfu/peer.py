"""Creating aiortc peer connections the way the media plane needs them.

Shared by the server side (`Participant`) and by clients built on aiortc (the synthetic
peer), so both gather on the same configured addresses.
"""

from __future__ import annotations

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)

from sfu import aiortc_adapter
from sfu.config import MediaConfig
from sfu.ice_servers import SelectedServers, select_servers
from sfu.sdp import announce_address, compact_bundle


def selected_servers(config: MediaConfig) -> SelectedServers:
    """The one STUN and the one TURN URL a new connection of `config` uses (aiortc takes
    one of each): the TURN URL whose transport ranks best in `config.turn_transports`."""
    servers = config.ice_servers_source() if config.ice_servers_source else config.ice_servers
    return select_servers(servers, config.turn_transports)


def ice_servers(config: MediaConfig) -> list[RTCIceServer]:
    """The selected ICE servers as aiortc wants them (possibly an empty list)."""
    return [
        RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
        for s in selected_servers(config).as_servers()
    ]


def create_peer_connection(config: MediaConfig) -> RTCPeerConnection:
    """A peer connection with an explicit ICE server list and ``max-bundle``.

    The explicit list (even empty) keeps aiortc from using its default public STUN
    server; ``max-bundle`` keeps every m-section on one transport (with aiortc's default
    policy a second video section can end up on a transport that is discarded). With
    ``ice_transport_policy="relay"`` only relayed candidates are gathered. Closing it
    while it connects logs no "Task exception was never retrieved"
    (`aiortc_adapter.PeerConnection`).
    """
    policy = (
        RTCIceTransportPolicy.RELAY
        if config.ice_transport_policy == "relay"
        else RTCIceTransportPolicy.ALL
    )
    return aiortc_adapter.PeerConnection(
        RTCConfiguration(
            iceServers=ice_servers(config),
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            iceTransportPolicy=policy,
        )
    )


async def set_local_description(
    pc: RTCPeerConnection, description: RTCSessionDescription, config: MediaConfig
) -> str:
    """Apply our offer/answer (gathering on the configured addresses); return the SDP to send.

    aiortc gathers every candidate before `setLocalDescription` returns, so the SDP
    returned carries them all (with the announced address, if configured), in the
    BUNDLE-tagged m-section and where stock aiortc reads them, with the shared transport
    attributes at the session level (`compact_bundle`: a room's subscribe SDP stays well
    under the WebSocket frame limit).
    """
    aiortc_adapter.configure_gathering(pc, config.host_addresses, config.port_range)
    await pc.setLocalDescription(description)
    local = pc.localDescription
    assert local is not None
    sdp = announce_address(local.sdp, config.host_addresses or None, config.announced_address)
    return compact_bundle(sdp)
