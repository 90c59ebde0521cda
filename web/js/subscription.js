// What this page asks the server to forward (SUBSCRIPTION: only what changed since the last
// one; the server merges partial updates) and what it says we get (LAYERS), shown as a
// "reduced quality" badge where the server's bandwidth estimate is the reason.
import { state } from "./state.js";

const sent = new Map(); // userId -> {camera, ...} as last sent in this room membership

/** `wanted`: userId -> camera layer ("high" | "low" | "off"); sends the difference. */
export function wantCameras(wanted) {
  if (!state.inRoom || !state.socket) return;
  const update = {};
  for (const [userId, camera] of wanted) {
    const before = sent.get(userId);
    if (!before || before.camera !== camera) update[userId] = { camera };
  }
  if (Object.keys(update).length === 0) return;
  if (!state.socket.send("SUBSCRIPTION", update)) return; // resent with the next layout
  for (const [userId, entry] of Object.entries(update)) {
    sent.set(userId, { ...sent.get(userId), ...entry });
  }
}

/** A new room membership: the server knows nothing of earlier subscriptions. */
export function resetSubscription() {
  sent.clear();
  state.layers.clear();
}

/** Someone left: if they come back, their subscription is sent again. */
export function forgetUser(userId) {
  sent.delete(userId);
  state.layers.delete(userId);
}

/** LAYERS {<userId>: {camera?, screen?, microphone?, reason}}: only the changed users. */
export function layersChanged(data) {
  for (const [userId, entry] of Object.entries(data)) {
    if (!entry || typeof entry !== "object") continue;
    state.layers.set(userId, entry);
    renderQuality(userId);
  }
}

/** The badges of this user's tiles from the last LAYERS entry about them. */
export function renderQuality(userId) {
  const entry = state.layers.get(userId);
  const reduced = Boolean(entry) && entry.reason === "bandwidth";
  const participant = state.participants.get(userId);
  if (participant) setBadge(participant.tile, "tile-quality", reduced);
  const screen = document.getElementById("screen-tile");
  if (screen && screen.dataset.userId === userId) {
    setBadge(screen, "screen-quality", reduced && entry.screen === "off");
  }
}

function setBadge(tile, testid, reduced) {
  tile.dataset.quality = reduced ? "reduced" : "full";
  tile.querySelector(`[data-testid=${testid}]`).hidden = !reduced;
}
