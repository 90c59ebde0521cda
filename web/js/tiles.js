// The other participants' tiles in the room grid: who is there, their video, mute and
// connection badges, and the active speaker highlight.
import { byId, el, show } from "./dom.js";
import { state } from "./state.js";
import { visibleState } from "./room.js";
import * as testHooks from "./testhooks.js";

export function upsertParticipant(info) {
  let participant = state.participants.get(info.userId);
  if (!participant) {
    participant = {
      userId: info.userId, name: info.name || "Participant", role: info.role || "",
      audio: true, video: true, stream: null, tile: null,
    };
    participant.tile = buildTile(participant);
    state.participants.set(info.userId, participant);
    byId("video-grid").append(participant.tile);
  }
  if (info.name) participant.name = info.name;
  if (info.role) participant.role = info.role;
  if (typeof info.audio === "boolean") participant.audio = info.audio;
  if (typeof info.video === "boolean") participant.video = info.video;
  state.presence.set(info.userId, true);
  renderTile(participant);
  show(byId("room-empty"), state.participants.size === 0);
  return participant;
}

export function removeParticipant(userId) {
  const participant = state.participants.get(userId);
  if (!participant) return;
  participant.tile.querySelector("video").srcObject = null;
  participant.tile.remove();
  state.participants.delete(userId);
  state.presence.set(userId, false);
  if (state.speaker === userId) setSpeaker(null);
  show(byId("room-empty"), state.participants.size === 0);
}

function buildTile(participant) {
  const video = el("video", { autoplay: true, playsinline: true, dataset: { testid: "remote-video" } });
  const unmute = el("button", { type: "button", class: "badge unmute", hidden: true,
                                dataset: { testid: "tile-unmute" } }, "Click to hear");
  unmute.addEventListener("click", () => {
    video.muted = false;
    video.play().catch(() => {});
    unmute.hidden = true;
  });
  return el("figure",
    { class: "tile", dataset: { testid: "remote-tile", userId: participant.userId,
                                connection: "connecting", video: "on", audio: "on",
                                speaking: "false", playing: "false" } },
    video,
    el("div", { class: "camera-off", dataset: { testid: "tile-camera-off" }, hidden: true },
       "Camera off"),
    el("figcaption", {},
       el("span", { class: "name", dataset: { testid: "tile-name" } }),
       el("span", { class: "badge role", dataset: { testid: "tile-role" } }),
       el("span", { class: "badge conn", dataset: { testid: "tile-connection" } }, "connecting"),
       el("span", { class: "badge mic", dataset: { testid: "tile-mic" } }),
       el("span", { class: "badge speaking", dataset: { testid: "tile-speaking" }, hidden: true },
          "Speaking"),
       unmute));
}

function renderTile(participant) {
  const tile = participant.tile;
  tile.querySelector("[data-testid=tile-name]").textContent = participant.name;
  tile.querySelector("[data-testid=tile-role]").textContent = participant.role;
  tile.querySelector("[data-testid=tile-mic]").textContent = participant.audio ? "Mic on" : "Mic muted";
  tile.dataset.audio = participant.audio ? "on" : "off";
  tile.dataset.video = participant.video ? "on" : "off";
  show(tile.querySelector("[data-testid=tile-camera-off]"), !participant.video);
  tile.setAttribute("aria-label", `${participant.name}${participant.video ? "" : ", camera off"}`);
  refreshTileConnection(participant);
}

export function refreshTileConnection(participant) {
  const subscribe = state.mediaStates.subscribe;
  let text;
  if (!state.inRoom) text = "reconnecting";
  else if (!participant.stream) text = subscribe === "failed" ? "failed" : "connecting";
  else text = visibleState(subscribe);
  setTileConnection(participant, text);
}

export function setTileConnection(participant, text) {
  const badge = participant.tile.querySelector("[data-testid=tile-connection]");
  badge.textContent = text;
  badge.dataset.state = text;
  participant.tile.dataset.connection = text;
}

export function remoteTrack(userId, stream, track) {
  if (!userId || userId === state.me._id) return; // unlabelled: wait for the server's mapping
  const participant = state.participants.get(userId) || upsertParticipant({ userId });
  const video = participant.tile.querySelector("video");
  // The server sends one stream per source (microphone, camera): the tile plays them together.
  if (!participant.stream) participant.stream = new MediaStream();
  const combined = participant.stream;
  if (track && !combined.getTracks().includes(track)) {
    for (const old of combined.getTracks().filter((t) => t.kind === track.kind)) {
      combined.removeTrack(old);
    }
    combined.addTrack(track);
    stream.addEventListener("removetrack", (event) => {
      if (participant.stream !== combined) return;
      combined.removeTrack(event.track);
      if (combined.getTracks().length === 0) {
        participant.stream = null;
        participant.tile.dataset.playing = "false";
        refreshTileConnection(participant);
      }
    });
  }
  if (video.srcObject !== combined) {
    video.srcObject = combined;
    watchFirstFrame(participant, video);
  }
  video.play().catch((error) => {
    if (error.name !== "NotAllowedError") return;
    // Autoplay with sound was refused: play muted and offer a button to listen.
    video.muted = true;
    video.play().catch(() => {});
    participant.tile.querySelector("[data-testid=tile-unmute]").hidden = false;
  });
  refreshTileConnection(participant);
}

function watchFirstFrame(participant, video) {
  const seen = () => {
    participant.tile.dataset.playing = "true";
    testHooks.firstFrame(participant.userId);
  };
  if ("requestVideoFrameCallback" in video) video.requestVideoFrameCallback(seen);
  else video.addEventListener("playing", seen, { once: true });
}

export function peerJoined(data) {
  if (!data.userId || data.userId === state.me._id) return;
  upsertParticipant(data);
}

export function peerLeft(data) {
  if (!data.userId) return;
  removeParticipant(data.userId);
}

export function mediaState(data) {
  const participant = state.participants.get(data.userId);
  if (!participant) return;
  if (typeof data.audio === "boolean") participant.audio = data.audio;
  if (typeof data.video === "boolean") participant.video = data.video;
  renderTile(participant);
}

export function activeSpeaker(data) {
  setSpeaker(data.userId || null);
}

export function setSpeaker(userId) {
  state.speaker = userId;
  const selfTile = byId("self-tile");
  const selfSpeaking = Boolean(userId) && state.me !== null && userId === state.me._id;
  selfTile.dataset.speaking = String(selfSpeaking);
  show(selfTile.querySelector("[data-testid=self-speaking]"), selfSpeaking);
  for (const participant of state.participants.values()) {
    const speaking = participant.userId === userId;
    participant.tile.dataset.speaking = String(speaking);
    show(participant.tile.querySelector("[data-testid=tile-speaking]"), speaking);
  }
}

