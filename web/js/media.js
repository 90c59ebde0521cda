// The two peer connections of one participant (docs/protocol.md, "Media: two peer connections"):
//  - "publish": this page offers, sendonly camera + microphone;
//  - "subscribe": the server offers (and re-offers when tracks come and go), this page answers.
// Stream ids in the subscribe offer map to user ids through the offer's `streams`.

// ICE: every local candidate is trickled (WEBRTC_ICE_CANDIDATE), then a null ends them. The
// description is sent as soon as it is set, without waiting for gathering. Candidates that
// happen to be inside the SDP as well are harmless duplicates; relying on the SDP alone is not
// enough for other servers: with max-bundle Chromium lists candidates only in the first
// m-section, and aiortc 1.16 keeps the remote candidates of the last bundled section only
// (this server copies them over, see sfu/sdp.py share_bundle_candidates).

function candidateJson(candidate) {
  if (!candidate || !candidate.candidate) return null;
  return {
    candidate: candidate.candidate,
    sdpMid: candidate.sdpMid,
    sdpMLineIndex: candidate.sdpMLineIndex,
  };
}

export class RoomMedia {
  /**
   * @param {object} options
   * @param {RTCIceServer[]} options.iceServers   exactly as ROOM_JOINED gave them
   * @param {"all"|"relay"} [options.iceTransportPolicy]  "relay": TURN-relayed candidates only
   * @param {(event: string, data: object) => boolean} options.send
   * @param {(pc: "publish"|"subscribe", state: string) => void} options.onState
   * @param {(userId: string|null, stream: MediaStream, track: MediaStreamTrack) => void} options.onTrack
   * @param {(message: string) => void} options.onError
   */
  constructor({ iceServers, iceTransportPolicy = "all", send, onState, onTrack, onError }) {
    this.iceServers = Array.isArray(iceServers) ? iceServers : [];
    this.iceTransportPolicy = iceTransportPolicy === "relay" ? "relay" : "all";
    this.send = send;
    this.onState = onState;
    this.onTrack = onTrack;
    this.onError = onError;
    this.pcs = { publish: null, subscribe: null };
    this.described = { publish: false, subscribe: false };
    this.pendingCandidates = { publish: [], subscribe: [] }; // until the description is sent
    this.candidatesEnded = { publish: false, subscribe: false };
    this.chains = { publish: Promise.resolve(), subscribe: Promise.resolve() };
    this.streamUsers = new Map();      // msid stream id -> user id
    this.unlabelled = new Map();       // stream id -> [stream, track] waiting for a mapping
    this.closed = false;
  }

  /** Run signalling steps of one connection strictly in order. */
  enqueue(name, step) {
    const run = this.chains[name].then(async () => {
      if (this.closed) return;
      try {
        await step();
      } catch (error) {
        if (!this.closed) this.onError(`${name} connection: ${error.message || error}`);
      }
    });
    this.chains[name] = run;
    return run;
  }

  createPeerConnection(name) {
    const pc = new RTCPeerConnection({
      iceServers: this.iceServers,
      iceTransportPolicy: this.iceTransportPolicy,
      bundlePolicy: "max-bundle",
    });
    pc.addEventListener("icecandidate", (event) => {
      if (this.closed) return;
      const candidate = candidateJson(event.candidate);
      if (this.described[name]) this.trickle(name, candidate);
      else this.pendingCandidates[name].push(candidate);
    });
    pc.addEventListener("connectionstatechange", () => {
      if (!this.closed) this.onState(name, pc.connectionState);
    });
    this.pcs[name] = pc;
    this.onState(name, pc.connectionState);
    return pc;
  }

  /** Send the local description, then the candidates gathered meanwhile. */
  sendDescription(name, event, key) {
    if (this.closed) return;
    const description = this.pcs[name].localDescription;
    this.send(event, { pc: name, [key]: { type: description.type, sdp: description.sdp } });
    if (!this.described[name]) {
      this.described[name] = true;
      for (const candidate of this.pendingCandidates[name].splice(0)) this.trickle(name, candidate);
    }
  }

  /** One candidate to the server; null (end of candidates) is sent once. */
  trickle(name, candidate) {
    if (this.candidatesEnded[name]) return;
    if (candidate === null) this.candidatesEnded[name] = true;
    this.send("WEBRTC_ICE_CANDIDATE", { pc: name, candidate });
  }

  /** Offer the camera and microphone tracks of `stream` (any of them may be missing). */
  publish(stream) {
    return this.enqueue("publish", async () => {
      const pc = this.pcs.publish || this.createPeerConnection("publish");
      for (const track of stream.getTracks()) {
        pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
      }
      await pc.setLocalDescription(await pc.createOffer());
      this.sendDescription("publish", "WEBRTC_OFFER", "offer");
    });
  }

  /** WEBRTC_ANSWER {pc: "publish", answer} from the server. */
  handleAnswer(data) {
    if (data.pc !== "publish") {
      this.onError(`Unexpected answer for the "${data.pc}" connection`);
      return Promise.resolve();
    }
    return this.enqueue("publish", async () => {
      const pc = this.pcs.publish;
      if (!pc) throw new Error("answer arrived before the offer was made");
      await pc.setRemoteDescription(data.answer);
    });
  }

  /** WEBRTC_OFFER {pc: "subscribe", offer, streams} from the server: answer it. */
  handleOffer(data) {
    if (data.pc !== "subscribe") {
      this.onError(`Unexpected offer for the "${data.pc}" connection`);
      return Promise.resolve();
    }
    return this.enqueue("subscribe", async () => {
      for (const [streamId, label] of Object.entries(data.streams || {})) {
        this.streamUsers.set(streamId, String(label && label.userId));
      }
      this.labelWaitingStreams();
      let pc = this.pcs.subscribe;
      if (!pc) {
        pc = this.createPeerConnection("subscribe");
        pc.addEventListener("track", (event) => this.trackArrived(event));
      }
      await pc.setRemoteDescription(data.offer);
      await pc.setLocalDescription(await pc.createAnswer());
      this.sendDescription("subscribe", "WEBRTC_ANSWER", "answer");
    });
  }

  /** WEBRTC_ICE_CANDIDATE {pc, candidate} from the server (rare: aiortc gathers up front). */
  handleCandidate(data) {
    const name = data.pc === "publish" ? "publish" : "subscribe";
    return this.enqueue(name, async () => {
      const pc = this.pcs[name];
      if (!pc || !pc.remoteDescription) return;
      await pc.addIceCandidate(data.candidate || undefined);
    });
  }

  trackArrived(event) {
    const stream = event.streams[0] || new MediaStream([event.track]);
    const userId = this.streamUsers.get(stream.id) || null;
    if (userId === null) this.unlabelled.set(stream.id, [stream, event.track]);
    this.onTrack(userId, stream, event.track);
  }

  labelWaitingStreams() {
    for (const [streamId, [stream, track]] of [...this.unlabelled]) {
      const userId = this.streamUsers.get(streamId);
      if (userId) {
        this.unlabelled.delete(streamId);
        this.onTrack(userId, stream, track);
      }
    }
  }

  /** Tracks of this stream belong to whom (null when the server has not said). */
  userOfStream(streamId) {
    return this.streamUsers.get(streamId) || null;
  }

  state(name) {
    const pc = this.pcs[name];
    return pc ? pc.connectionState : "new";
  }

  close() {
    this.closed = true;
    for (const name of ["publish", "subscribe"]) {
      const pc = this.pcs[name];
      if (pc) pc.close();
      this.pcs[name] = null;
    }
  }
}
