"""Canary: fails loudly when the aiortc/aioice internals sfu relies on change.

If this fails after an upgrade, read sfu/aiortc_adapter/internals.py (every internal
and why), check each interception point against the new aiortc source, and only then
move the pins in pyproject.toml. Reading aiortc's internals is this file's job: it is
the one module outside `sfu/aiortc_adapter/` that `test_adapter_boundary.py` lets do it.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import struct
import threading
import tomllib
from pathlib import Path

import aioice
import aiortc
import pylibsrtp
import pytest
from aioice import ice as aioice_ice
from aioice import turn as aioice_turn
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcpeerconnection import create_media_description_for_transceiver
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtcrtpreceiver import decoder_worker
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from sfu import aiortc_adapter
from sfu.aiortc_adapter import internals
from sfu.direct_send import MID_URI, RTP_HEADER, DirectRtpSender, mid_extension
from sfu.errors import AdapterError
from sfu.payloads import RtpPayloads
from sfu.stats import SendCounts

ROOT = Path(__file__).resolve().parents[2]


def _source(obj: object) -> str:
    return inspect.getsource(obj)  # type: ignore[arg-type]


def test_the_installed_versions_are_the_pinned_ones() -> None:
    assert aiortc.__version__ == aiortc_adapter.AIORTC_VERSION
    assert aioice.__version__ == aiortc_adapter.AIOICE_VERSION
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dependencies = pyproject["project"]["dependencies"]
    assert f"aiortc=={aiortc_adapter.AIORTC_VERSION}" in dependencies
    assert f"aioice=={aiortc_adapter.AIOICE_VERSION}" in dependencies


def test_every_internal_attribute_the_adapter_uses_exists() -> None:
    aiortc_adapter.check_internals()


def test_the_receiver_still_feeds_its_jitter_buffer_then_its_decoder_queue() -> None:
    handle = _source(RTCRtpReceiver._handle_rtp_packet)
    assert "packet._data = depayload(codec, packet.payload)" in handle
    assert "pli_flag, encoded_frame = self.__jitter_buffer.add(packet)" in handle
    assert "self.__decoder_queue.put((codec, encoded_frame))" in handle
    assert handle.index("unwrap_rtx") < handle.index("self.__jitter_buffer.add")
    assert handle.index("self.__nack_generator.add") < handle.index("self.__jitter_buffer.add")
    receive = _source(RTCRtpReceiver.receive)
    assert "self.__decoder_queue" in receive and "target=decoder_worker" in receive
    worker = _source(decoder_worker)
    assert "task = input_q.get()" in worker and "if task is None:" in worker
    assert worker.index("if task is None:") < worker.index("get_decoder(codec)")


def test_the_sender_packs_av_packets_and_reads_pts_without_yielding() -> None:
    # ForwardingTrack stamps a shared packet's pts in recv(): the sender must read it
    # (Encoder.pack) before any other task can run.
    next_frame = _source(RTCRtpSender._next_encoded_frame)
    after_recv = next_frame.split("await self.__track.recv()", 1)[1]
    before_branch, branches = after_recv.split("if isinstance(data, Frame):", 1)
    packet_branch = branches.split("else:", 1)[1].split("self.__encoder.pack(data)", 1)[0]
    assert "await" not in before_branch and "await" not in packet_branch
    rtcp = _source(RTCRtpSender._handle_rtcp_packet)
    assert re.search(r"RTCP_PSFB_PLI.*\n.*\n\s*self\._send_keyframe\(\)", rtcp)
    assert "self._retransmit(seq)" in rtcp
    describe = _source(create_media_description_for_transceiver)
    assert "transceiver.sender._stream_id} {transceiver.sender._track_id}" in describe


def test_the_ice_gatherer_still_gathers_through_its_connection() -> None:
    gatherer = _source(aiortc.RTCIceGatherer.gather)
    assert "await self._connection.gather_candidates()" in gatherer
    components = _source(aioice.Connection.get_component_candidates)
    assert "local_addr=(address, 0)" in components


async def test_interception_replaces_the_jitter_buffer_and_decoder_queue() -> None:
    pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    try:
        receiver = pc.addTransceiver("video").receiver
        assert not aiortc_adapter.is_intercepted(receiver)
        stub = aiortc_adapter.intercept_receiver(receiver, lambda packet, data: None)
        assert aiortc_adapter.is_intercepted(receiver)
        assert aiortc_adapter.decoder_queue(receiver) is stub
        # aiortc's own decoder worker, fed our stub, ends at once without a decoder.
        output: asyncio.Queue[object] = asyncio.Queue()
        worker = threading.Thread(
            target=decoder_worker,
            args=(asyncio.get_running_loop(), stub, output, threading.Event()),
        )
        worker.start()
        assert await asyncio.wait_for(output.get(), timeout=2) is None
        worker.join(timeout=2)
        assert not worker.is_alive() and stub.gets == 1 and stub.frames_put == 0
    finally:
        await pc.close()


def test_a_missing_internal_fails_loudly_instead_of_creating_a_new_attribute() -> None:
    class Renamed:
        pass

    with pytest.raises(AdapterError, match="internals changed"):
        aiortc_adapter.intercept_receiver(Renamed(), lambda packet, data: None)  # type: ignore[arg-type]
    with pytest.raises(AdapterError):
        aiortc_adapter.on_keyframe_request(Renamed(), lambda: None)  # type: ignore[arg-type]


def test_the_direct_send_path_still_matches_what_aiortc_does_itself() -> None:
    rtcp = _source(RTCRtpSender._handle_rtcp_packet)
    assert "await self._retransmit(seq)" in rtcp  # NACKs reach DirectRtpSender.retransmit
    # Sender reports: aiortc's send() starts the RTCP task through the attribute we
    # replace per sender, stop() waits for the two events our stand-in sets, and the
    # round trip time is computed from the fields our reports record.
    assert "self.__rtcp_task = asyncio.ensure_future(self._run_rtcp())" in _source(
        RTCRtpSender.send
    )
    stop = _source(RTCRtpSender.stop)
    assert "self.__rtcp_started.wait()" in stop and "self.__rtcp_exited.wait()" in stop
    report = _source(RTCRtpSender._run_rtcp)
    assert "self.__lsr = ((self.__ntp_timestamp) >> 16) & 0xFFFFFFFF" in report
    assert "self.__lsr_time = time.time()" in report
    assert "self.__rtcp_exited.set()" in report
    assert "if self.__lsr == report.lsr and report.dlsr:" in rtcp
    assert "rtt = time.time() - self.__lsr_time - (report.dlsr / 65536)" in rtcp
    connect = _source(aiortc.RTCPeerConnection._RTCPeerConnection__connect)  # type: ignore[attr-defined]
    assert "await transceiver.sender.send(self.__localRtp(transceiver))" in connect
    send_rtp = _source(RTCDtlsTransport._send_rtp)
    assert "self._state != State.CONNECTED" in send_rtp
    assert "data = self._tx_srtp.protect(data)" in send_rtp
    assert "await self.transport._send(data)" in send_rtp
    sendto = _source(aioice.Connection.sendto)
    assert "active_pair = self._nominated.get(component)" in sendto
    assert "active_pair.protocol.send_data(data, active_pair.remote_addr)" in sendto
    assert "self.transport.sendto(data, addr)" in _source(aioice_ice.StunProtocol.send_data)


async def test_a_live_sender_has_the_fields_the_direct_path_updates() -> None:
    pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    try:
        sender = pc.addTransceiver("video", direction="sendonly").sender
        direct = DirectRtpSender(sender, "video", lambda: None)
        assert not direct.ready
        assert sender._retransmit == direct.retransmit
        assert direct.send_frame(RtpPayloads([b"x"]), 0) is False  # no transport: nothing sent
    finally:
        await pc.close()


def test_lean_srtp_protection_is_byte_identical_to_pylibsrtp() -> None:
    key = bytes(range(30))

    def session() -> pylibsrtp.Session:
        policy = pylibsrtp.Policy(
            key=key,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
        )
        policy.allow_repeat_tx = True
        return pylibsrtp.Session(policy)

    stock, lean = session(), session()
    protect = aiortc_adapter.lean_protect(lean)
    for seq in range(300):
        packet = struct.pack("!BBHII", 0x80, 96, seq, seq * 3000, 1234) + bytes([seq % 256]) * (
            seq * 4
        )
        assert protect(packet) == stock.protect(packet)
    with pytest.raises(ValueError):
        protect(bytes(1500))


def test_direct_rtp_packets_are_byte_identical_to_aiortc_serialization() -> None:
    mid_map = HeaderExtensionsMap()
    mid_map.configure(
        RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(id=1, uri=MID_URI)])
    )
    packet = RtpPacket(payload_type=97, marker=1, sequence_number=513, timestamp=90000, ssrc=77)
    packet.payload = b"payload"
    packet.extensions.mid = "12"
    ours = RTP_HEADER.pack(0x90, 0x80 | 97, 513, 90000, 77) + mid_extension(1, "12") + b"payload"
    assert ours == packet.serialize(mid_map)


def test_a_relayed_pair_still_sends_through_aioices_turn_transport() -> None:
    # The direct path tells a relayed pair by its transport's class (it has no socket and
    # no is_closing()) and sends with its sendto(); selected_pair() reads the TURN
    # transport from the connection.
    relayed = _source(aioice_ice.relayed_candidate)
    assert "turn.create_turn_endpoint(" in relayed and "protocol_factory" in relayed
    endpoint = _source(aioice_turn.create_turn_endpoint)
    assert "turn_transport = TurnTransport(inner_protocol)" in endpoint
    assert "await turn_transport._connect(protocol)" in endpoint
    connect = _source(aioice_turn.TurnTransport._connect)
    assert "protocol.connection_made(" in connect
    assert not hasattr(aioice_turn.TurnTransport, "is_closing")
    unconnected = object.__new__(aioice_turn.TurnTransport)
    assert unconnected.get_extra_info("socket") is None
    assert aiortc_adapter.is_relayed(unconnected)
    components = _source(aioice.Connection.get_component_candidates)
    assert "turn_transport=self.turn_transport" in components
    assert "turn_ssl=self.turn_ssl" in components


def test_nacks_and_send_counters_are_where_the_counting_wrappers_read_them() -> None:
    # NackCounter wraps the receiver's _send_rtcp_nack(media_ssrc, lost), called per gap.
    handle = _source(RTCRtpReceiver._handle_rtp_packet)
    assert "await self._send_rtcp_nack(" in handle
    assert "sorted(self.__nack_generator.missing)" in handle
    assert list(inspect.signature(RTCRtpReceiver._send_rtcp_nack).parameters) == [
        "self",
        "media_ssrc",
        "lost",
    ]
    # SenderCounters: the stock sender's packet/octet counters count first transmissions
    # and payload bytes; _retransmit answers from __rtp_history only.
    run_rtp = _source(RTCRtpSender._run_rtp)
    assert "self.__octet_count += len(payload)" in run_rtp
    assert "self.__packet_count += 1" in run_rtp
    retransmit = _source(RTCRtpSender._retransmit)
    assert "self.__rtp_history.get(sequence_number % RTP_HISTORY_SIZE)" in retransmit
    assert "packet.sequence_number == sequence_number" in retransmit
    assert "__packet_count" not in retransmit and "__octet_count" not in retransmit
    with pytest.raises(AdapterError, match="no longer sets"):
        internals.require_field(RTCRtpSender, "_RTCRtpSender__renamed")


async def test_live_senders_and_receivers_count_nacks_through_the_adapter() -> None:
    pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    try:
        receiver = pc.addTransceiver("video", direction="recvonly").receiver
        counter = aiortc_adapter.nack_counter(receiver)
        assert aiortc_adapter.nack_counter(receiver) is counter  # installed once per receiver
        await receiver._send_rtcp_nack(1234, [7, 8, 9])  # no RTCP SSRC yet: nothing is sent
        assert counter.sequence_numbers == 3

        stock = pc.addTransceiver("video", direction="sendonly").sender
        counters = aiortc_adapter.SenderCounters(stock)
        assert stock._retransmit == counters.retransmit
        await stock._retransmit(5)  # not in the history: NACKed, not re-sent
        assert counters.counts() == SendCounts(0, 0, 1, 0)

        direct_sender = pc.addTransceiver("video", direction="sendonly").sender
        direct = DirectRtpSender(direct_sender, "video", lambda: None)
        await direct_sender._retransmit(5)
        assert direct.counts() == SendCounts(0, 0, 1, 0)
    finally:
        await pc.close()


async def test_the_connect_task_aiortc_starts_runs_the_adapters_override() -> None:
    # aiortc starts `self.__connect()` after each description and never awaits it; a
    # close mid-handshake makes it raise from `RTCIceTransport.start`. PeerConnection
    # overrides the mangled name to retrieve that error itself.
    for method in ("setLocalDescription", "setRemoteDescription"):
        source = _source(getattr(aiortc.RTCPeerConnection, method))
        assert "asyncio.ensure_future(self.__connect())" in source
    connect = _source(aiortc.RTCPeerConnection._RTCPeerConnection__connect)  # type: ignore[attr-defined]
    assert "await iceTransport.start(" in connect and "await dtlsTransport.start(" in connect
    start = _source(aiortc.RTCIceTransport.start)
    assert 'raise InvalidStateError("RTCIceTransport is closed")' in start
    override = aiortc_adapter.PeerConnection._RTCPeerConnection__connect.__code__
    pc = aiortc_adapter.PeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio")
        before = asyncio.all_tasks()
        await pc.setLocalDescription(await pc.createOffer())
        started = [
            t
            for t in asyncio.all_tasks() - before
            if getattr(t.get_coro(), "cr_code", None) is override
        ]
        assert len(started) == 1
    finally:
        await pc.close()
    await asyncio.wait(started, timeout=2)
    assert started[0].done() and started[0].exception() is None


def test_the_synchronous_receive_path_does_what_the_dtls_task_would() -> None:
    # receive_media_synchronously replaces aioice's data_received (queue.put_nowait) and
    # then calls what RTCDtlsTransport._recv_next calls for keyed SRTP/SRTCP.
    assert "self._queue.put_nowait((data, component))" in _source(aioice.Connection.data_received)
    assert "self.receiver.data_received(data, self.local_candidate.component)" in _source(
        aioice_ice.StunProtocol.datagram_received
    )
    recv_next = _source(RTCDtlsTransport._recv_next)
    assert "first_byte > 127 and first_byte < 192 and self._rx_srtp" in recv_next
    assert "data = self._rx_srtp.unprotect_rtcp(data)" in recv_next
    assert "await self._handle_rtcp_data(data)" in recv_next
    assert "data = self._rx_srtp.unprotect(data)" in recv_next
    assert "await self._handle_rtp_data(data, arrival_time_ms=arrival_time_ms)" in recv_next
    assert "arrival_time_ms = clock.current_ms()" in recv_next
    # _MediaFirst skips the STUN parse attempt only for what it would reject anyway.
    datagram_received = _source(aioice_ice.StunProtocol.datagram_received)
    assert "message = stun.parse_message(data)" in datagram_received
    assert "except ValueError:" in datagram_received


async def test_control_reads_still_find_the_selector_loops_internals() -> None:
    # ControlReads takes a UDP transport's descriptor off the loop's selector and calls
    # the transport's own read handler, which reads one datagram and hands it over.
    loop = asyncio.get_running_loop()
    assert isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop)
    # (the public remove_reader refuses a descriptor a transport owns)
    assert "self._ensure_fd_no_transport(fd)" in _source(type(loop).remove_reader)
    received: list[bytes] = []

    class Protocol(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            received.append(data)

    transport, _ = await loop.create_datagram_endpoint(Protocol, local_addr=("127.0.0.1", 0))
    try:
        fd = transport._sock_fd  # type: ignore[attr-defined]
        assert fd == transport.get_extra_info("socket").fileno()
        assert loop._remove_reader(fd) is True  # type: ignore[attr-defined]
        transport.sendto(b"ping", transport.get_extra_info("sockname"))
        await asyncio.sleep(0.05)
        assert received == []  # off the selector: nothing read
        transport._read_ready()  # type: ignore[attr-defined]
        assert received == [b"ping"]
        transport._read_ready()  # type: ignore[attr-defined]  # nothing left: no error
    finally:
        transport.close()


async def test_a_peer_connections_fingerprints_are_computed_once_and_right() -> None:
    pc = aiortc_adapter.PeerConnection()
    try:
        (certificate,) = pc._RTCPeerConnection__certificates  # type: ignore[attr-defined]
        cached = certificate.getFingerprints()
        fresh = aiortc.RTCCertificate.getFingerprints(certificate)
        assert [(f.algorithm, f.value) for f in cached] == [(f.algorithm, f.value) for f in fresh]
        cached.clear()  # callers get a copy
        assert len(certificate.getFingerprints()) == len(fresh)
        # aiortc writes descriptions from it: each m-section's fingerprint is the cert's.
        pc.addTransceiver("video", direction="sendonly")
        offer = await pc.createOffer()
        assert f"a=fingerprint:sha-256 {fresh[0].value}" in offer.sdp
        assert "getFingerprints()" in _source(RTCDtlsTransport.getLocalParameters)
    finally:
        await pc.close()


def test_a_receiver_without_nack_generator_and_estimator_is_what_aiortc_makes_for_audio() -> None:
    init = _source(RTCRtpReceiver.__init__)
    assert "self.__nack_generator = None" in init
    assert "self.__remote_bitrate_estimator = None" in init
    handle = _source(RTCRtpReceiver._handle_rtp_packet)
    assert "if self.__remote_bitrate_estimator is not None:" in handle
    assert "if self.__nack_generator is not None and self.__nack_generator.add(packet):" in handle
    receiver = RTCRtpReceiver("video", internals.ProbeTransport())  # type: ignore[arg-type]
    assert not aiortc_adapter.receive_state_released(receiver)
    aiortc_adapter.release_receive_state(receiver)
    assert aiortc_adapter.receive_state_released(receiver)


async def test_sendonly_transceivers_are_built_without_a_bandwidth_estimator() -> None:
    # aiortc builds the estimator through the module global the adapter swaps.
    assert "self.__remote_bitrate_estimator = RemoteBitrateEstimator()" in _source(
        RTCRtpReceiver.__init__
    )
    estimator_class = aiortc.rtcrtpreceiver.RemoteBitrateEstimator  # type: ignore[attr-defined]
    pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    try:
        transceiver = aiortc_adapter.add_sendonly_transceiver(pc, aiortc.VideoStreamTrack())
        assert transceiver.direction == "sendonly" and transceiver.kind == "video"
        assert aiortc_adapter.receive_state_released(transceiver.receiver)
        restored = aiortc.rtcrtpreceiver.RemoteBitrateEstimator  # type: ignore[attr-defined]
        assert restored is estimator_class
        # Other receivers still get theirs.
        receiving = pc.addTransceiver("video", direction="recvonly")
        assert not aiortc_adapter.receive_state_released(receiving.receiver)
    finally:
        await pc.close()


def test_a_receiver_still_sends_its_remb_alone_through_send_rtcp() -> None:
    handle = _source(RTCRtpReceiver._handle_rtp_packet)
    assert "fci=pack_remb_fci(*remb)" in handle
    assert "await self._send_rtcp(rtcp_packet)" in handle


async def test_a_publish_connections_rembs_carry_the_sum_of_its_receivers() -> None:
    from aiortc import RTCCertificate, RTCIceGatherer, RTCIceTransport
    from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci, unpack_remb_fci

    dtls = RTCDtlsTransport(
        RTCIceTransport(RTCIceGatherer([])), [RTCCertificate.generateCertificate()]
    )
    sent: list[RtcpPsfbPacket] = []

    async def capture(packet: RtcpPsfbPacket) -> None:
        sent.append(packet)

    remb = aiortc_adapter.RembSum()
    high, low = RTCRtpReceiver("video", dtls), RTCRtpReceiver("video", dtls)
    for receiver in (high, low):
        receiver._send_rtcp = capture  # type: ignore[method-assign,assignment]
        aiortc_adapter.sum_remb(receiver, remb)
    for receiver, bitrate, ssrc in ((high, 600_000, 11), (low, 150_000, 22)):
        fci = pack_remb_fci(bitrate, [ssrc])
        await receiver._send_rtcp(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=5, media_ssrc=0, fci=fci))
    summed = [unpack_remb_fci(packet.fci) for packet in sent]
    assert summed[0] == (600_000, [11])
    bitrate, ssrcs = summed[1]
    assert abs(bitrate - 750_000) / 750_000 < 0.001 and ssrcs == [11, 22]
    pli = RtcpPsfbPacket(fmt=1, ssrc=5, media_ssrc=11)
    await high._send_rtcp(pli)  # anything else passes as it is
    assert sent[-1] is pli
