// What this page sends on its publish connection (docs/protocol.md, "Publishing"): the
// microphone, the camera as two layers (the camera track and a clone of it scaled down, two
// m-sections), and the teacher's shared screen; the `tracks` map naming each by mid; and
// muting by not sending (the sender's track is replaced with null while muted).

const CAMERA_LAYERS = {
  high: { width: 640, height: 360, maxBitrate: 600_000 },
  low: { width: 320, height: 180, maxBitrate: 150_000 },
};
// VP8 in three temporal layers (a quarter, half and all of the frames).
const SCREEN_SCALABILITY = "L1T3";

/** How much to scale a camera of `settings` down to fit within `layer`. */
function scaleFor(settings, layer) {
  const width = settings.width || CAMERA_LAYERS.high.width;
  const height = settings.height || CAMERA_LAYERS.high.height;
  return Math.max(1, width / layer.width, height / layer.height);
}

/** The sending side of one member's publish connection. */
export class Publisher {
  /** @param {import("./media.js").RoomMedia} media */
  constructor(media) {
    this.media = media;
    // key -> {transceiver, track (what it sends while unmuted), source, layer?, owned}
    this.slots = new Map();
    this.muted = { audio: false, video: false };
  }

  /** Offer the microphone and the camera (both layers) of `stream`; either may be missing. */
  start(stream) {
    return this.media.negotiatePublish(async (pc) => {
      const [microphone] = stream.getAudioTracks();
      const [camera] = stream.getVideoTracks();
      if (microphone) this.add(pc, "microphone", microphone, stream, { source: "microphone" });
      if (camera) {
        const settings = camera.getSettings();
        for (const [layer, limits] of Object.entries(CAMERA_LAYERS)) {
          // The low layer sends a clone, so that each layer is a track of its own.
          const track = layer === "high" ? camera : camera.clone();
          this.add(pc, `camera-${layer}`, track, stream, { source: "camera", layer }, {
            sendEncodings: [{
              maxBitrate: limits.maxBitrate, scaleResolutionDownBy: scaleFor(settings, limits),
            }],
            owned: layer !== "high",
          });
        }
      }
      await this.applyMuted();
    }, () => this.tracks());
  }

  add(pc, key, track, stream, label, { sendEncodings, owned = false } = {}) {
    const transceiver = pc.addTransceiver(track, {
      direction: "sendonly", streams: [stream], ...(sendEncodings ? { sendEncodings } : {}),
    });
    this.slots.set(key, { transceiver, track, owned, ...label });
  }

  /** `tracks` of the publish offer: {<mid>: {source, layer?}} for every slot that sends. */
  tracks() {
    const tracks = {};
    for (const slot of this.slots.values()) {
      const mid = slot.transceiver.mid;
      // A stopped share's section is inactive: naming it "screen" would claim the share.
      if (mid === null || slot.transceiver.direction === "inactive") continue;
      tracks[mid] = slot.layer ? { source: slot.source, layer: slot.layer } : { source: slot.source };
    }
    return tracks;
  }

  /** Stop sending the microphone (`audio`) or the camera (`video`) while muted. */
  setMuted({ audio, video }) {
    this.muted = { audio: Boolean(audio), video: Boolean(video) };
    return this.applyMuted();
  }

  async applyMuted() {
    const replacing = [];
    for (const slot of this.slots.values()) {
      if (slot.source === "screen") continue;
      const muted = slot.source === "microphone" ? this.muted.audio : this.muted.video;
      const track = muted ? null : slot.track;
      if (slot.transceiver.sender.track !== track) {
        replacing.push(slot.transceiver.sender.replaceTrack(track));
      }
    }
    await Promise.all(replacing);
  }

  get sharingScreen() {
    const slot = this.slots.get("screen");
    return Boolean(slot && slot.track);
  }

  /**
   * Send `track` as the screen share (renegotiates; a stopped share's m-section is reused).
   * Resolves true when the server took it; false when refused, and nothing is sent then.
   */
  async startScreen(track) {
    track.contentHint = "detail";
    const stream = new MediaStream([track]);
    const accepted = await this.media.negotiatePublish(async (pc) => {
      const slot = this.slots.get("screen");
      if (!slot) {
        // Three temporal layers: a weak downlink gets the screen at a lower frame rate
        // rather than blurred (docs/protocol.md, LAYERS frameRate).
        try {
          this.add(pc, "screen", track, stream, { source: "screen" }, {
            sendEncodings: [{ scalabilityMode: SCREEN_SCALABILITY }],
          });
        } catch (error) {
          if (error.name !== "OperationError" && error.name !== "NotSupportedError") throw error;
          this.add(pc, "screen", track, stream, { source: "screen" });
        }
        return;
      }
      slot.track = track;
      slot.transceiver.direction = "sendonly";
      if (slot.transceiver.sender.setStreams) slot.transceiver.sender.setStreams(stream);
      await slot.transceiver.sender.replaceTrack(track);
    }, () => this.tracks());
    if (!accepted) await this.quietScreen();
    return accepted;
  }

  /** Stop sending the screen and renegotiate (its m-section goes inactive). */
  async stopScreen() {
    if (!this.sharingScreen) return;
    await this.quietScreen();
    await this.media.negotiatePublish(() => {}, () => this.tracks());
  }

  async quietScreen() {
    const slot = this.slots.get("screen");
    if (!slot) return;
    if (slot.track) slot.track.stop();
    slot.track = null;
    slot.transceiver.direction = "inactive";
    await slot.transceiver.sender.replaceTrack(null);
  }

  /** Release what this publisher captured itself (the camera clone, the screen). */
  close() {
    for (const slot of this.slots.values()) {
      if ((slot.owned || slot.source === "screen") && slot.track) slot.track.stop();
    }
    this.slots.clear();
  }
}
