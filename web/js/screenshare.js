// The shared screen: the teacher's button (getDisplayMedia, sent by web/js/publisher.js as
// the "screen" source), and the large screen tile showing whoever shares (SCREEN_SHARE,
// ROOM_JOINED.screenShare): the remote track, or my own capture while I share.
import { byId, show } from "./dom.js";
import { state } from "./state.js";
import { showMessage } from "./messages.js";
import { scheduleLayout } from "./layout.js";
import { renderQuality } from "./subscription.js";
import { renderAllTileModeration } from "./moderation.js";

const button = byId("toggle-screen");
let starting = false; // between the click and the server's answer

button.addEventListener("click", () => {
  if (state.localScreen) stopSharing();
  else startSharing();
});

async function startSharing() {
  const publisher = state.publisher;
  if (!publisher || starting) return;
  starting = true;
  renderButton();
  let track = null;
  try {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    [track] = stream.getVideoTracks();
  } catch (error) {
    // Cancelling the browser's picker is NotAllowedError: nothing to report.
    if (error.name !== "NotAllowedError") {
      showMessage(`Screen sharing unavailable (${error.name}: ${error.message}).`);
    }
  }
  if (track && state.publisher === publisher) {
    track.addEventListener("ended", () => {
      if (state.localScreen === track) stopSharing();
    });
    state.localScreen = track;
    renderScreen();
    const accepted = await publisher.startScreen(track);
    if (!accepted && state.localScreen === track) state.localScreen = null;
  } else if (track) {
    track.stop(); // left the room while the picker was open
  }
  starting = false;
  renderScreen();
}

/** Stop my screen share (the button, the browser's own "stop sharing", a takeover). */
export async function stopSharing() {
  const track = state.localScreen;
  if (!track) return;
  state.localScreen = null;
  renderScreen();
  if (state.publisher) await state.publisher.stopScreen();
  track.stop();
}

/** SCREEN_SHARE {userId, active}: to everyone in the room, the sharer included. */
export function screenShareChanged(data) {
  const userId = data.userId ? String(data.userId) : null;
  if (data.active) {
    state.screenShare = userId;
    if (userId !== state.me._id && state.localScreen) {
      showMessage("Your screen share stopped: someone else is sharing now.", "info");
      stopSharing();
    }
  } else if (state.screenShare === userId) {
    state.screenShare = null;
  }
  renderScreen();
}

/** A "screen" track from the subscribe connection. */
export function screenTrack(userId, stream, track) {
  state.screenTracks.set(userId, track);
  stream.addEventListener("removetrack", (event) => {
    if (event.track === track && state.screenTracks.get(userId) === track) {
      state.screenTracks.delete(userId);
      renderScreen();
    }
  });
  renderScreen();
}

/** Leaving the room (or losing it): my share ends, nobody else's is shown. */
export function leaveScreens() {
  if (state.localScreen) state.localScreen.stop();
  state.localScreen = null;
  state.screenShare = null;
  state.screenTracks.clear();
  renderScreen();
}

function renderButton() {
  const sharing = state.localScreen !== null;
  button.textContent = sharing ? "Stop sharing" : "Share screen";
  button.setAttribute("aria-pressed", String(sharing));
  button.disabled = starting;
}

export function renderScreen() {
  const tile = byId("screen-tile");
  const video = tile.querySelector("video");
  const mine = state.localScreen !== null;
  // The server's word that I share lags behind my stop button: only my capture counts.
  const other = state.screenShare === state.me._id ? null : state.screenShare;
  const sharer = mine ? state.me._id : other;
  const track = mine ? state.localScreen : (sharer && state.screenTracks.get(sharer)) || null;
  // Shown from SCREEN_SHARE on, before the track's first frame.
  show(tile, sharer !== null);
  tile.dataset.userId = sharer || "";
  tile.dataset.mine = String(mine);
  const participant = sharer ? state.participants.get(sharer) : null;
  byId("screen-name").textContent = mine ? "You" : (participant ? participant.name : "");
  const current = video.srcObject ? video.srcObject.getVideoTracks()[0] || null : null;
  if (current !== track) {
    video.srcObject = track ? new MediaStream([track]) : null;
    tile.dataset.playing = "false";
    if (track) {
      video.requestVideoFrameCallback(() => { tile.dataset.playing = "true"; });
      video.play().catch(() => {});
    }
  }
  if (sharer) renderQuality(sharer);
  renderAllTileModeration();
  renderButton();
  scheduleLayout();
}
