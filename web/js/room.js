// The live room: joining and leaving, the camera and microphone, the two peer connections
// (web/js/media.js, what is sent on them: web/js/publisher.js) and their automatic restart,
// and my own tile's connection badge.
import { byId, show } from "./dom.js";
import { RoomMedia } from "./media.js";
import { Publisher } from "./publisher.js";
import { isTeacher, state } from "./state.js";
import { showMessage } from "./messages.js";
import { refreshControls } from "./controls.js";
import { send } from "./connection.js";
import { renderSessionStatus } from "./session.js";
import { renderRoster } from "./roster.js";
import { recordingChanged } from "./recording.js";
import { chatJoined, chatLeft } from "./chat.js";
import { handsJoined, handsLeft } from "./hands.js";
import { pollJoined, pollsLeft } from "./polls.js";
import { moderationJoined, moderationLeft } from "./moderation.js";
import {
  refreshTileConnection, remoteTrack, removeParticipant, setSpeaker, upsertParticipant,
} from "./tiles.js";
import { leaveScreens, renderScreen } from "./screenshare.js";
import { resetSubscription } from "./subscription.js";
import { scheduleLayout } from "./layout.js";
import * as testHooks from "./testhooks.js";

const RELAY_KEY = "classroom.relayOnly"; // localStorage: "1" = iceTransportPolicy "relay"
const DISCONNECTED_GRACE_MS = 4000; // a "disconnected" peer connection gets this long to recover


byId("join-room").addEventListener("click", () => {
  testHooks.joinClicked();
  state.wantInRoom = true;
  ensureLocalStream();
  sendJoin();
});

// "Relay only" is a device preference (it follows the network), so it survives sign-outs.
const relayOnly = byId("relay-only");
relayOnly.checked = localStorage.getItem(RELAY_KEY) === "1";
relayOnly.addEventListener("change", () => {
  if (relayOnly.checked) localStorage.setItem(RELAY_KEY, "1");
  else localStorage.removeItem(RELAY_KEY);
});

byId("leave-room").addEventListener("click", () => {
  state.wantInRoom = false;
  if (state.socket) state.socket.send("LEAVE_ROOM", {});
  leaveRoomLocally();
  stopLocalStream();
  showMessage("You left the room.", "info");
  renderSessionStatus();
});

byId("toggle-camera").addEventListener("click", () => {
  state.camOn = !state.camOn;
  applyLocalMediaState(true);
});

byId("toggle-mic").addEventListener("click", () => {
  state.micOn = !state.micOn;
  applyLocalMediaState(true);
});

export function sendJoin() {
  state.joinPending = true;
  show(byId("room"));
  setSelfConnection("connecting");
  refreshControls();
  if (state.socket && state.socket.isOpen) state.socket.send("JOIN_ROOM", {});
  // else: the socket's open handler sends it.
}

function ensureLocalStream() {
  if (!state.localStreamPromise) {
    const pending = navigator.mediaDevices
      .getUserMedia({ audio: true, video: { width: 640, height: 360 } })
      .then((stream) => {
        if (state.localStreamPromise !== pending || !state.wantInRoom) {
          // The join was refused (or left) while the camera was opening: close it again.
          for (const track of stream.getTracks()) track.stop();
          return null;
        }
        state.localStream = stream;
        const video = byId("self-video");
        video.srcObject = stream;
        video.play().catch(() => {});
        applyLocalMediaState(false);
        return stream;
      })
      .catch((error) => {
        showMessage(`Camera/microphone unavailable (${error.name}: ${error.message}). ` +
                    "You can still watch and listen.");
        if (state.localStreamPromise === pending) state.localStreamPromise = null;
        return null;
      });
    state.localStreamPromise = pending;
  }
  return state.localStreamPromise;
}

function stopLocalStream() {
  if (state.localStream) for (const track of state.localStream.getTracks()) track.stop();
  state.localStream = null;
  state.localStreamPromise = null;
  byId("self-video").srcObject = null;
}

/** The teacher turned my microphone or camera off (MODERATED): as my own buttons do it. */
export function forceLocalMedia({ audio = state.micOn, video = state.camOn }) {
  state.micOn = audio;
  state.camOn = video;
  applyLocalMediaState(true);
}

/** ERROR answering MEDIA_STATE (the teacher muted me and the class keeps it so): my
 * microphone stays off, and the server is not told again. */
export function mediaStateRefused() {
  state.micOn = false;
  applyLocalMediaState(false);
}

/** MODERATED remove: the server closed my membership; out of the room, no rejoin. */
export function removedFromRoom() {
  state.wantInRoom = false;
  leaveRoomLocally();
  stopLocalStream();
  renderSessionStatus();
}

function applyLocalMediaState(tellServer) {
  if (state.localStream) {
    for (const track of state.localStream.getVideoTracks()) track.enabled = state.camOn;
    for (const track of state.localStream.getAudioTracks()) track.enabled = state.micOn;
  }
  // Muted means not sent at all, not only silence or black frames.
  if (state.publisher) state.publisher.setMuted({ audio: !state.micOn, video: !state.camOn });
  const tile = byId("self-tile");
  tile.dataset.video = state.camOn ? "on" : "off";
  tile.dataset.audio = state.micOn ? "on" : "off";
  show(tile.querySelector("[data-testid=self-camera-off]"), !state.camOn);
  tile.querySelector("[data-testid=self-mic]").textContent = state.micOn ? "Mic on" : "Mic muted";
  const camera = byId("toggle-camera");
  camera.textContent = state.camOn ? "Turn camera off" : "Turn camera on";
  camera.setAttribute("aria-pressed", String(state.camOn));
  const mic = byId("toggle-mic");
  mic.textContent = state.micOn ? "Mute microphone" : "Unmute microphone";
  mic.setAttribute("aria-pressed", String(state.micOn));
  if (tellServer && state.inRoom) send("MEDIA_STATE", { audio: state.micOn, video: state.camOn });
}

export async function roomJoined(data) {
  if (!state.wantInRoom) return; // left before the server answered (LEAVE_ROOM follows it)
  testHooks.roomJoined();
  state.joinPending = false;
  state.joinRetries = 0;
  state.inRoom = true;
  if (data.sessionId) state.session.sessionId = data.sessionId;
  resetSubscription();
  state.screenShare = data.screenShare ? String(data.screenShare) : null;
  byId("self-name").textContent = `You (${state.me.name})`;
  show(byId("room"));
  // Rebuild the participant list from the server's view.
  const listed = new Set();
  for (const participant of data.participants || []) {
    if (!participant || participant.userId === state.me._id) continue;
    listed.add(participant.userId);
    upsertParticipant(participant);
  }
  for (const userId of [...state.participants.keys()]) if (!listed.has(userId)) removeParticipant(userId);
  renderSessionStatus();
  if (isTeacher()) renderRoster();
  recordingChanged(data.recording || { active: false });
  chatJoined(data.chat);
  handsJoined(data.hands);
  pollJoined(data.poll);
  moderationJoined();
  renderScreen();
  scheduleLayout();

  const relay = relayOnly.checked;
  const hasTurn = (data.iceServers || []).some((server) =>
    [].concat(server.urls || []).some((url) => String(url).startsWith("turn")));
  if (relay && !hasTurn) {
    showMessage("Relay only is on, but this server offers no TURN relay: media cannot connect.");
  }
  const media = new RoomMedia({
    iceServers: data.iceServers,
    iceTransportPolicy: relay ? "relay" : "all",
    send: (event, payload) => (state.socket ? state.socket.send(event, payload) : false),
    onState: (pc, pcState) => mediaConnectionChanged(media, pc, pcState),
    onTrack: (owner, stream, track) => remoteTrack(owner, stream, track),
    onError: (message) => showMessage(`Media problem: ${message}`),
  });
  const publisher = new Publisher(media);
  state.media = media;
  state.publisher = publisher;
  const stream = await ensureLocalStream();
  if (state.media !== media) return; // left or dropped meanwhile
  if (stream) {
    publisher.setMuted({ audio: !state.micOn, video: !state.camOn });
    publisher.start(stream);
    if (!state.camOn || !state.micOn) send("MEDIA_STATE", { audio: state.micOn, video: state.camOn });
  } else {
    setSelfConnection("connected", "in the room (not sending)");
  }
}

export function leaveRoomLocally({ keepTiles = false } = {}) {
  state.joinPending = false;
  state.inRoom = false;
  recordingChanged({ active: false });
  if (state.disconnectTimer !== null) clearTimeout(state.disconnectTimer);
  state.disconnectTimer = null;
  leaveScreens();
  if (state.publisher) state.publisher.close();
  state.publisher = null;
  if (state.media) state.media.close();
  state.media = null;
  state.mediaStates = { publish: "new", subscribe: "new" };
  // A dropped socket keeps the chat on screen until the rejoin brings the room's again;
  // the server lowers my hand with the membership, so the queue is read afresh too.
  chatLeft({ keepMessages: keepTiles });
  handsLeft();
  pollsLeft();
  moderationLeft();
  if (!keepTiles) {
    for (const userId of [...state.participants.keys()]) removeParticipant(userId);
    state.presence.clear();
    show(byId("room"), false);
    if (!state.wantInRoom) stopLocalStream();
  }
  setSpeaker(null);
  if (state.cls) renderSessionStatus();
}

/** Peer connection states drive the visible statuses and the automatic reconnect. */
function mediaConnectionChanged(media, pc, pcState) {
  if (state.media !== media) return;
  state.mediaStates[pc] = pcState;
  if (pc === "publish" || (pc === "subscribe" && !state.localStream)) {
    setSelfConnection(visibleState(pcState));
  }
  if (pc === "publish" && pcState === "connected") state.mediaRestarts = 0;
  if (pc === "subscribe") {
    for (const participant of state.participants.values()) refreshTileConnection(participant);
  }
  const anyFailed = Object.values(state.mediaStates).includes("failed");
  const anyDisconnected = Object.values(state.mediaStates).includes("disconnected");
  if (anyFailed) {
    restartMedia("the media connection failed");
  } else if (anyDisconnected && state.disconnectTimer === null) {
    state.disconnectTimer = setTimeout(() => {
      state.disconnectTimer = null;
      if (state.media === media && Object.values(state.mediaStates).includes("disconnected")) {
        restartMedia("the media connection was interrupted");
      }
    }, DISCONNECTED_GRACE_MS);
  }
}

export function restartMedia(reason) {
  if (!state.wantInRoom || !state.socket) return;
  state.mediaRestarts += 1;
  showMessage(`Reconnecting: ${reason}.`, "info");
  setSelfConnection("reconnecting");
  // Dropping the socket makes the server forget our room membership; the reconnect path
  // (socket backoff, then JOIN_ROOM) builds everything again. Repeated media failures back
  // off further even though the socket itself reconnects fine.
  state.socket.drop(state.mediaRestarts - 1);
}

export function visibleState(pcState) {
  switch (pcState) {
    case "connected": return "connected";
    case "disconnected": return "reconnecting";
    case "failed": return "failed";
    case "closed": return "closed";
    default: return "connecting";
  }
}

export function setSelfConnection(connection, text = connection) {
  const badge = byId("self-tile").querySelector("[data-testid=self-connection]");
  badge.textContent = text;
  badge.dataset.state = connection;
  byId("self-tile").dataset.connection = connection;
}

