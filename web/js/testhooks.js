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
