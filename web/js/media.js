// The two peer connections of one participant (docs/protocol.md, "Media: two peer connections"):
//  - "publish": this page offers what web/js/publisher.js puts on it, one offer at a time
//    (the next waits for the answer to the previous one, or for its refusal);
//  - "subscribe": the server offers (and re-offers when tracks come and go), this page answers.
// Stream ids in the subscribe offer map to {userId, source} through the offer's `streams`.
import { withOpusDtx } from "./sdp.js";

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
   * @param {(owner: {userId: string, source: string}|null, stream: MediaStream,
   *           track: MediaStreamTrack) => void} options.onTrack
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
    this.streamOwners = new Map();     // msid stream id -> {userId, source}
    this.unlabelled = new Map();       // stream id -> [stream, track] waiting for a mapping
    this.publishReply = null;          // resolves the outstanding publish offer's outcome
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
  sendDescription(name, event, key, extra = {}) {
    if (this.closed) return;
    const description = this.pcs[name].localDescription;
    this.send(event, { pc: name, [key]: { type: description.type, sdp: description.sdp }, ...extra });
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

  /**
   * (Re)negotiate the publish connection: `prepare(pc)` changes its transceivers, then the
   * offer (with Opus DTX) goes out with `tracks: describe()`, read once the mids are set.
   * Resolves true once the server's answer is applied, false when the server refused the
   * offer (it is rolled back) or the connection closed.
   */
  negotiatePublish(prepare, describe) {
    let accepted = false;
    return this.enqueue("publish", async () => {
      const pc = this.pcs.publish || this.createPeerConnection("publish");
      await prepare(pc);
      const offer = await pc.createOffer();
      await pc.setLocalDescription({ type: "offer", sdp: withOpusDtx(offer.sdp) });
      const reply = new Promise((resolve) => { this.publishReply = resolve; });
      this.sendDescription("publish", "WEBRTC_OFFER", "offer", { tracks: describe() });
      const outcome = await reply;
      this.publishReply = null;
      if (this.closed) return;
      if (outcome.answer) {
        await pc.setRemoteDescription(outcome.answer);
        accepted = true;
      } else if (pc.signalingState === "have-local-offer") {
        await pc.setLocalDescription({ type: "rollback" });
      }
    }).then(() => accepted);
  }

  /** WEBRTC_ANSWER {pc: "publish", answer} from the server. */
  handleAnswer(data) {
    if (data.pc !== "publish") {
      this.onError(`Unexpected answer for the "${data.pc}" connection`);
    } else if (!this.publishReply) {
      this.onError("publish connection: an answer arrived but no offer is outstanding");
    } else {
      this.publishReply({ answer: data.answer });
    }
  }

  /** The server answered the outstanding publish offer with an ERROR: true when there was one. */
  publishRefused(message) {
    if (!this.publishReply) return false;
    this.publishReply({ refused: message });
    return true;
  }

  /** WEBRTC_OFFER {pc: "subscribe", offer, streams} from the server: answer it. */
  handleOffer(data) {
    if (data.pc !== "subscribe") {
      this.onError(`Unexpected offer for the "${data.pc}" connection`);
      return Promise.resolve();
    }
    return this.enqueue("subscribe", async () => {
      for (const [streamId, owner] of Object.entries(data.streams || {})) {
        // Servers before selective forwarding sent {<streamId>: userId}: all of it camera.
        const labelled = owner && typeof owner === "object"
          ? { userId: String(owner.userId), source: String(owner.source || "camera") }
          : { userId: String(owner), source: "camera" };
        this.streamOwners.set(streamId, labelled);
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
    const owner = this.streamOwners.get(stream.id) || null;
    if (owner === null) this.unlabelled.set(stream.id, [stream, event.track]);
    else this.onTrack(owner, stream, event.track);
  }

  labelWaitingStreams() {
    for (const [streamId, [stream, track]] of [...this.unlabelled]) {
      const owner = this.streamOwners.get(streamId);
      if (owner) {
        this.unlabelled.delete(streamId);
        this.onTrack(owner, stream, track);
      }
    }
  }

  state(name) {
    const pc = this.pcs[name];
    return pc ? pc.connectionState : "new";
  }

  close() {
    this.closed = true;
    if (this.publishReply) this.publishReply({ closed: true });
    for (const name of ["publish", "subscribe"]) {
      const pc = this.pcs[name];
      if (pc) pc.close();
      this.pcs[name] = null;
    }
  }
}
