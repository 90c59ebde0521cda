// The other participants' tiles: who is there, their camera video and microphone audio
// (separate streams from the server, one per source), mute and connection badges, and the
// active speaker highlight, the raised hand's ✋ (web/js/hands.js keeps the queue). Where
// each tile goes is web/js/layout.js's job.
import { byId, el, show } from "./dom.js";
import { state } from "./state.js";
import { visibleState } from "./room.js";
import { scheduleLayout } from "./layout.js";
import { forgetUser, renderQuality } from "./subscription.js";
import { screenTrack } from "./screenshare.js";
import { renderHandBadge } from "./hands.js";
import { renderTileModeration } from "./moderation.js";
import * as testHooks from "./testhooks.js";

export function upsertParticipant(info) {
  let participant = state.participants.get(info.userId);
  if (!participant) {
    participant = {
      userId: info.userId, name: info.name || "Participant", role: info.role || "",
      audio: true, video: true, tracks: { camera: null, microphone: null }, tile: null,
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
  scheduleLayout();
  return participant;
}

export function removeParticipant(userId) {
  const participant = state.participants.get(userId);
  if (!participant) return;
  participant.tile.querySelector("video").srcObject = null;
  participant.tile.querySelector("audio").srcObject = null;
  participant.tile.remove();
  state.participants.delete(userId);
  state.presence.set(userId, false);
  forgetUser(userId);
  if (state.speaker === userId) setSpeaker(null);
  show(byId("room-empty"), state.participants.size === 0);
  scheduleLayout();
}

function buildTile(participant) {
  const video = el("video", { autoplay: true, playsinline: true, muted: true,
                              dataset: { testid: "remote-video" } });
  video.muted = true; // the attribute alone does not mute; sound comes from the <audio>
  const audio = el("audio", { autoplay: true, dataset: { testid: "remote-audio" } });
  const unmute = el("button", { type: "button", class: "badge unmute", hidden: true,
                                dataset: { testid: "tile-unmute" } }, "Click to hear");
  unmute.addEventListener("click", () => {
    audio.play().catch(() => {});
    unmute.hidden = true;
  });
  return el("figure",
    { class: "tile", dataset: { testid: "remote-tile", userId: participant.userId,
                                source: "camera", connection: "connecting", video: "on",
                                audio: "on", speaking: "false", playing: "false", hand: "down",
                                placement: "small", quality: "full" } },
    video,
    audio,
    el("div", { class: "camera-off", dataset: { testid: "tile-camera-off" }, hidden: true },
       "Camera off"),
    el("figcaption", {},
       el("span", { class: "badge hand", dataset: { testid: "tile-hand" }, hidden: true,
                    title: "Hand raised" }, "✋ Hand up"),
       el("span", { class: "name", dataset: { testid: "tile-name" } }),
       el("span", { class: "badge source", dataset: { testid: "tile-source" } }, "Camera"),
       el("span", { class: "badge role", dataset: { testid: "tile-role" } }),
       el("span", { class: "badge conn", dataset: { testid: "tile-connection" } }, "connecting"),
       el("span", { class: "badge mic", dataset: { testid: "tile-mic" } }),
       el("span", { class: "badge speaking", dataset: { testid: "tile-speaking" }, hidden: true },
          "Speaking"),
       el("span", { class: "badge quality", dataset: { testid: "tile-quality" }, hidden: true },
          "reduced quality"),
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
  renderHandBadge(tile, "tile-hand", state.hands.has(participant.userId));
  tile.setAttribute("aria-label",
                    `${participant.name}, camera${participant.video ? "" : " off"}`);
  refreshTileConnection(participant);
  renderQuality(participant.userId);
  renderTileModeration(participant);
}

export function refreshTileConnection(participant) {
  const subscribe = state.mediaStates.subscribe;
  const receiving = participant.tracks.camera || participant.tracks.microphone;
  let text;
  if (!state.inRoom) text = "reconnecting";
  else if (!receiving) text = subscribe === "failed" ? "failed" : "connecting";
  else text = visibleState(subscribe);
  setTileConnection(participant, text);
}

export function setTileConnection(participant, text) {
  const badge = participant.tile.querySelector("[data-testid=tile-connection]");
  badge.textContent = text;
  badge.dataset.state = text;
  participant.tile.dataset.connection = text;
}

/** A track from the subscribe connection, labelled by its stream's owner. */
export function remoteTrack(owner, stream, track) {
  if (owner.userId === state.me._id) return;
  if (owner.source === "screen") {
    screenTrack(owner.userId, stream, track);
    return;
  }
  const participant = state.participants.get(owner.userId)
    || upsertParticipant({ userId: owner.userId });
  // By kind: before selective forwarding one stream carried both camera and microphone.
  const slot = track.kind === "audio" ? "microphone" : "camera";
  if (participant.tracks[slot] === track) return;
  participant.tracks[slot] = track;
  const element = participant.tile.querySelector(slot === "camera" ? "video" : "audio");
  element.srcObject = new MediaStream([track]);
  stream.addEventListener("removetrack", (event) => {
    if (event.track !== track || participant.tracks[slot] !== track) return;
    participant.tracks[slot] = null;
    element.srcObject = null;
    if (slot === "camera") participant.tile.dataset.playing = "false";
    refreshTileConnection(participant);
  });
  if (slot === "camera") {
    watchFirstFrame(participant, element);
    element.play().catch(() => {});
  } else {
    element.play().catch((error) => {
      // Autoplay with sound was refused: offer a button to listen.
      if (error.name === "NotAllowedError") {
        participant.tile.querySelector("[data-testid=tile-unmute]").hidden = false;
      }
    });
  }
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
  scheduleLayout();
}
