// Test hooks: timings and handles the browser tests read. Only a page opened with
// ?testHooks=1 exposes them (window.classroom, window.classroomMetrics); the production
// page records nothing and adds no globals.

export const enabled = new URLSearchParams(location.search).get("testHooks") === "1";

// Epoch milliseconds, comparable across tabs on one machine.
const metrics = { joinClickedAt: null, firstFrameAt: {}, roomJoins: 0 };
const now = () => performance.timeOrigin + performance.now();

export function joinClicked() {
  if (!enabled) return;
  metrics.joinClickedAt = now();
  metrics.firstFrameAt = {};
}

export function roomJoined() {
  if (enabled) metrics.roomJoins += 1;
}

export function firstFrame(userId) {
  if (enabled && !(userId in metrics.firstFrameAt)) metrics.firstFrameAt[userId] = now();
}

/** Publish `handles` as window.classroom (and the metrics) when the flag is on. */
export function expose(handles) {
  if (!enabled) return;
  window.classroom = handles;
  window.classroomMetrics = metrics;
}

/** Outbound RTP streams of the publish connection, named by the `tracks` entry of their mid. */
export async function sentRtp(media, publisher) {
  const pc = media && media.pcs.publish;
  if (!pc || !publisher) return [];
  const tracks = publisher.tracks();
  const encodings = {};
  for (const transceiver of pc.getTransceivers()) {
    const [encoding] = transceiver.sender.getParameters().encodings || [];
    if (transceiver.mid !== null && encoding) {
      encodings[transceiver.mid] = {
        maxBitrate: encoding.maxBitrate ?? null,
        scaleResolutionDownBy: encoding.scaleResolutionDownBy ?? null,
        scalabilityMode: encoding.scalabilityMode ?? null,
      };
    }
  }
  const streams = [];
  (await pc.getStats()).forEach((report) => {
    if (report.type !== "outbound-rtp") return;
    streams.push({
      kind: report.kind, mid: report.mid, ...(tracks[report.mid] || {}),
      encoding: encodings[report.mid] || null, bytesSent: report.bytesSent || 0,
      framesEncoded: report.framesEncoded || 0, frameWidth: report.frameWidth || 0,
      frameHeight: report.frameHeight || 0, scalabilityMode: report.scalabilityMode || null,
    });
  });
  return streams;
}

/** The inbound RTP stream receiving `track` on the subscribe connection (null: none). */
export async function receivedVideo(media, track) {
  const pc = media && media.pcs.subscribe;
  const receiver = pc && track ? pc.getReceivers().find((r) => r.track === track) : null;
  if (!receiver) return null;
  let inbound = null;
  (await receiver.getStats()).forEach((report) => {
    if (report.type === "inbound-rtp") {
      inbound = {
        bytesReceived: report.bytesReceived || 0, framesDecoded: report.framesDecoded || 0,
        frameWidth: report.frameWidth || 0, frameHeight: report.frameHeight || 0,
        framesPerSecond: report.framesPerSecond || 0, freezeCount: report.freezeCount || 0,
        totalFreezesDuration: report.totalFreezesDuration || 0,
      };
    }
  });
  return inbound;
}

/** Any inbound RTP stream of the subscribe connection by its track: bytes and packets. */
export async function receivedRtp(media, track) {
  const pc = media && media.pcs.subscribe;
  const receiver = pc && track ? pc.getReceivers().find((r) => r.track === track) : null;
  if (!receiver) return null;
  let inbound = null;
  (await receiver.getStats()).forEach((report) => {
    if (report.type === "inbound-rtp") {
      inbound = {
        kind: report.kind, bytesReceived: report.bytesReceived || 0,
        packetsReceived: report.packetsReceived || 0,
      };
    }
  });
  return inbound;
}
