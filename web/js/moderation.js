// Teacher moderation (MODERATE): Mute, Stop camera, Stop screen and Remove on each student's
// tile, Remove and Readmit in the roster, "Mute everyone"; what a moderated student's page
// does (MODERATED: the microphone or camera off as their own buttons do it, the screen share
// stopped, out of the room when removed), and the "muted by teacher" badge the room sees
// (MODERATION). The server enforces all of it whatever this page does.
import { byId, el, show } from "./dom.js";
import { isTeacher, state } from "./state.js";
import { showMessage } from "./messages.js";
import { send } from "./connection.js";
import { forceLocalMedia, removedFromRoom } from "./room.js";
import { stopSharing } from "./screenshare.js";
import { renderRoster } from "./roster.js";

export const REMOVED_TEXT = "You were removed from this session by the teacher";

const muteAll = byId("moderate-mute-all");
const removed = new Set();      // students the teacher removed (MODERATION remove/readmit)
const mutedByTeacher = new Set(); // shown as "muted by teacher" until they unmute

const TILE_ACTIONS = [
  ["mute", "moderate-mute", "Mute"],
  ["stop_camera", "moderate-stop-camera", "Stop camera"],
  ["stop_screen", "moderate-stop-screen", "Stop screen"],
  ["remove", "moderate-remove", "Remove"],
  ["allow_unmute", "moderate-allow-unmute", "Allow unmute"],
];

muteAll.addEventListener("click", () => {
  if (state.inRoom && isTeacher()) send("MODERATE", { all: true, action: "mute" });
});

export function moderate(userId, action) {
  if (state.inRoom && isTeacher()) send("MODERATE", { userId, action });
}

/** MODERATED {action, by, at}: the teacher acted on me. */
export function moderated(data) {
  switch (data.action) {
    case "mute":
      forceLocalMedia({ audio: false });
      showMessage("The teacher muted your microphone.", "info");
      break;
    case "stop_camera":
      forceLocalMedia({ video: false });
      showMessage("The teacher turned your camera off.", "info");
      break;
    case "stop_screen":
      stopSharing();
      showMessage("The teacher stopped your screen share.", "info");
      break;
    case "remove":
      removedFromRoom();
      showRemoved(true);
      showMessage(REMOVED_TEXT);
      break;
    case "readmit":
      showRemoved(false);
      showMessage("The teacher readmitted you: you may join the room again.", "info");
      break;
    case "allow_unmute":
      showMessage("The teacher lets you unmute your microphone again.", "info");
      break;
    default: break;
  }
}

/** MODERATION {userId, action, by, at}: the teacher acted on someone else in the room. */
export function moderation(data) {
  if (!data.userId) return;
  const userId = String(data.userId);
  if (data.action === "mute") mutedByTeacher.add(userId);
  if (data.action === "allow_unmute") mutedByTeacher.delete(userId);
  if (data.action === "remove") removed.add(userId);
  if (data.action === "readmit") removed.delete(userId);
  const participant = state.participants.get(userId);
  if (participant) renderTileModeration(participant);
  renderRoster();
}

/** MEDIA_STATE {userId, audio}: a microphone back on is no longer "muted by teacher". */
export function mediaStateSeen(data) {
  if (data.audio === true && data.userId && mutedByTeacher.delete(String(data.userId))) {
    const participant = state.participants.get(String(data.userId));
    if (participant) renderTileModeration(participant);
  }
}

/** Out of the room: the badges go with the tiles; who was removed stays known. */
export function moderationLeft() {
  mutedByTeacher.clear();
  renderControls();
}

export function moderationJoined() {
  showRemoved(false);
  renderControls();
}

export const isRemoved = (userId) => removed.has(userId);

function showRemoved(visible) {
  const notice = byId("removed-notice");
  notice.textContent = visible ? `${REMOVED_TEXT}.` : "";
  show(notice, visible);
}

function renderControls() {
  show(muteAll, isTeacher() && state.inRoom);
  muteAll.disabled = !state.inRoom;
  for (const participant of state.participants.values()) renderTileModeration(participant);
}

/** Called by tiles.js whenever a tile is drawn, and on SCREEN_SHARE. */
export function renderTileModeration(participant) {
  const tile = participant.tile;
  const muted = mutedByTeacher.has(participant.userId) && !participant.audio;
  tile.dataset.moderated = muted ? "muted" : "";
  let badge = tile.querySelector("[data-testid=tile-moderated]");
  if (!badge) {
    badge = el("span", { class: "badge moderated", dataset: { testid: "tile-moderated" },
                         hidden: true }, "muted by teacher");
    tile.querySelector("figcaption").append(badge);
  }
  show(badge, muted);
  let box = tile.querySelector("[data-testid=tile-moderation]");
  const wanted = isTeacher() && participant.role === "student";
  if (!wanted) {
    if (box) box.remove();
    return;
  }
  if (!box) {
    box = el("div", { class: "tile-moderation", dataset: { testid: "tile-moderation" } },
      ...TILE_ACTIONS.map(([action, testid, label]) => {
        const button = el("button", {
          type: "button", dataset: { testid, action },
          "aria-label": `${label} ${participant.name}`,
        }, label);
        button.addEventListener("click", () => moderate(participant.userId, action));
        return button;
      }));
    tile.append(box);
  }
  for (const button of box.querySelectorAll("button")) {
    const [, , label] = TILE_ACTIONS.find(([action]) => action === button.dataset.action);
    button.setAttribute("aria-label", `${label} ${participant.name}`);
    button.disabled = !state.inRoom;
  }
  show(box.querySelector("[data-testid=moderate-mute]"), participant.audio);
  show(box.querySelector("[data-testid=moderate-stop-camera]"), participant.video);
  show(box.querySelector("[data-testid=moderate-stop-screen]"),
       state.screenShare === participant.userId);
  show(box.querySelector("[data-testid=moderate-allow-unmute]"),
       mutedByTeacher.has(participant.userId));
}

export function renderAllTileModeration() {
  for (const participant of state.participants.values()) renderTileModeration(participant);
}

/** The roster row's moderation cell (roster.js builds the row). */
export function renderRosterModeration(row, student) {
  const cell = row.querySelector("[data-testid=roster-moderation]");
  let remove = cell.querySelector("[data-testid=roster-remove]");
  let readmit = cell.querySelector("[data-testid=roster-readmit]");
  if (!remove) {
    remove = el("button", { type: "button", dataset: { testid: "roster-remove" },
                            "aria-label": `Remove ${student.name} from this session` }, "Remove");
    remove.addEventListener("click", () => moderate(student._id, "remove"));
    readmit = el("button", { type: "button", dataset: { testid: "roster-readmit" },
                             "aria-label": `Readmit ${student.name}` }, "Readmit");
    readmit.addEventListener("click", () => moderate(student._id, "readmit"));
    cell.append(remove, readmit);
  }
  const gone = removed.has(student._id);
  show(remove, !gone);
  show(readmit, gone);
  remove.disabled = !state.inRoom || !state.session.isActive;
  readmit.disabled = !state.inRoom || !state.session.isActive;
}
