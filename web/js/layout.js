// Where each tile goes: the teacher's camera (and the shared screen) large on the stage,
// the students in a grid of at most `state.pageSize` tiles with pages, the active speaker
// promoted onto the current page; and from that, which camera layer to ask the server for.
import { byId, show } from "./dom.js";
import { state } from "./state.js";
import { wantCameras } from "./subscription.js";

const CAMERA_FOR = { large: "high", small: "low", off: "off" };

let scheduled = false;

/** Lay the tiles out again once the current task is done (changes come in bursts). */
export function scheduleLayout() {
  if (scheduled) return;
  scheduled = true;
  queueMicrotask(() => {
    scheduled = false;
    renderLayout();
  });
}

function byName(a, b) {
  return a.name.localeCompare(b.name) || a.userId.localeCompare(b.userId);
}

/** The students shown on the current page (the speaker takes the last place if elsewhere). */
function currentPage(students) {
  const size = Math.max(1, state.pageSize);
  const pages = Math.max(1, Math.ceil(students.length / size));
  state.gridPage = Math.min(Math.max(0, state.gridPage), pages - 1);
  const shown = students.slice(state.gridPage * size, (state.gridPage + 1) * size);
  const speaker = students.find((participant) => participant.userId === state.speaker);
  let promoted = null;
  if (speaker && !shown.includes(speaker)) {
    promoted = speaker;
    if (shown.length === size) shown[size - 1] = speaker;
    else shown.push(speaker);
  }
  return { shown, pages, promoted };
}

export function renderLayout() {
  const everyone = [...state.participants.values()];
  const teachers = everyone.filter((participant) => participant.role === "teacher");
  const students = everyone.filter((participant) => participant.role !== "teacher").sort(byName);
  const { shown, pages, promoted } = currentPage(students);

  const stage = byId("stage");
  const grid = byId("video-grid");
  const wanted = new Map();
  for (const participant of everyone) {
    let placement = "off";
    if (participant.role === "teacher") placement = "large";
    else if (shown.includes(participant)) placement = "small";
    const tile = participant.tile;
    const home = placement === "large" ? stage : grid;
    if (tile.parentElement !== home) {
      home.append(tile);
      // Moving a media element out of the document pauses it.
      for (const media of tile.querySelectorAll("video, audio")) media.play().catch(() => {});
    }
    tile.dataset.placement = placement;
    tile.dataset.promoted = String(participant === promoted);
    // Off-page tiles stay in the document, hidden: their microphone keeps playing.
    show(tile, placement !== "off");
    if (placement === "small") tile.style.order = String(shown.indexOf(participant) + 1);
    wanted.set(participant.userId, CAMERA_FOR[placement]);
  }
  show(stage, teachers.length > 0 || !byId("screen-tile").hidden);

  show(byId("grid-pages"), pages > 1);
  byId("grid-page").textContent = `Page ${state.gridPage + 1} of ${pages}`;
  byId("grid-prev").disabled = state.gridPage === 0;
  byId("grid-next").disabled = state.gridPage >= pages - 1;
  wantCameras(wanted);
}

/** At most `size` student tiles per page (default 8). */
export function setPageSize(size) {
  state.pageSize = Math.max(1, Math.floor(size));
  renderLayout();
}

byId("grid-prev").addEventListener("click", () => {
  state.gridPage -= 1;
  renderLayout();
});
byId("grid-next").addEventListener("click", () => {
  state.gridPage += 1;
  renderLayout();
});
