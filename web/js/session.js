// The selected class's attendance session: live or not, started or ended, kept fresh by
// polling GET /class/:id/room (the socket's DONE is the fast path for the end).
import { ApiError } from "./api.js";
import { byId, show } from "./dom.js";
import { api, isTeacher, state } from "./state.js";
import { guarded, reportError, showMessage } from "./messages.js";
import { refreshControls } from "./controls.js";
import { loadClasses, setClassLive } from "./classes.js";
import { send } from "./connection.js";
import { leaveRoomLocally } from "./room.js";
import { renderRoster, requestRoster, showFinalStatuses } from "./roster.js";
import { loadMyHistory, requestMyAttendance, setMyStatus } from "./my_attendance.js";

const POLL_MS = 2000;        // how often the selected class's session state is re-read
const CLASS_LIST_EVERY = 3;  // ...and the class list, every this many polls

export function applyRoomState(room, { initial = false } = {}) {
  const wasActive = state.session.isActive;
  const previousSession = state.session.sessionId;
  if (room.isActive) {
    state.session = { isActive: true, sessionId: room.sessionId, ended: false };
  } else {
    state.session = { ...state.session, isActive: false };
  }
  setClassLive(state.cls._id, Boolean(room.isActive));
  if (room.isActive && (!wasActive || previousSession !== room.sessionId)) {
    sessionStarted(initial);
  } else if (!room.isActive && wasActive && state.endedSessionId !== previousSession) {
    // The session ended and we missed DONE (e.g. while reconnecting).
    sessionEnded(null, previousSession);
  }
  renderSessionStatus();
}

function sessionStarted(initial) {
  state.marks.clear();
  if (!initial && !isTeacher()) showMessage("The live session has started.", "info");
  if (isTeacher()) {
    renderRoster();
  } else {
    setMyStatus(null);
    requestMyAttendance();
  }
}

export function sessionEnded(done, sessionId = state.session.sessionId) {
  if (sessionId && state.endedSessionId === sessionId) return;
  state.endedSessionId = sessionId;
  state.session = { isActive: false, sessionId, ended: true, done };
  state.wantInRoom = false;
  leaveRoomLocally();
  if (state.cls) setClassLive(state.cls._id, false);
  renderSessionStatus();
  if (isTeacher()) {
    if (done) byId("summary").textContent = summaryText(done, "Final");
    show(byId("live-roster"), false);
    renderRoster();
    // The live roster showed provisional statuses; the stored final ones replace them.
    if (state.cls && sessionId) showFinalStatuses(state.cls._id, sessionId).catch(reportError);
  } else if (state.cls) {
    loadMyHistory({ final: true }).catch(reportError);
  }
}

export function summaryText(data, label) {
  const parts = [`${data.present ?? 0} present`, `${data.absent ?? 0} absent`];
  if (data.late) parts.push(`${data.late} late`);
  return `${label}: ${parts.join(", ")}, ${data.total ?? 0} total.`;
}

export function renderSessionStatus() {
  const status = byId("session-status");
  let text;
  let stateName;
  if (state.session.isActive) {
    stateName = "live";
    text = state.inRoom
      ? "Session is live. You are in the room."
      : "Session is live. Join the room to take part.";
  } else if (state.session.ended) {
    stateName = "ended";
    const done = state.session.done;
    text = "Session ended." + (done && done.message ? ` ${done.message}.` : "");
  } else {
    stateName = "none";
    text = isTeacher()
      ? "No active session for this class. Start one from the teacher panel."
      : "No active session for this class right now. This page updates when your teacher starts one.";
  }
  status.textContent = text;
  status.dataset.state = stateName;
  refreshControls();
}

export function startPolling() {
  stopPolling();
  state.pollCount = 0;
  state.pollTimer = setInterval(poll, POLL_MS);
}

export function stopPolling() {
  if (state.pollTimer !== null) clearInterval(state.pollTimer);
  state.pollTimer = null;
}

let polling = false;
async function poll() {
  if (!state.cls || polling) return;
  polling = true;
  const classId = state.cls._id;
  try {
    const room = await api.room(classId);
    if (state.cls && state.cls._id === classId) {
      applyRoomState(room);
      requestRoster();
    }
    state.pollCount += 1;
    if (state.pollCount % CLASS_LIST_EVERY === 0) await loadClasses();
  } catch (error) {
    // A failed poll is not worth a message each time; the socket status shows connectivity.
    if (error instanceof ApiError && error.status === 401) reportError(error);
  } finally {
    polling = false;
  }
}

byId("start-session").addEventListener("click", (event) => guarded(async () => {
  const started = await api.startSession(state.cls._id);
  applyRoomState({ isActive: true, sessionId: started.sessionId });
}, event.currentTarget));

byId("end-session").addEventListener("click", (event) => guarded(async () => {
  const sessionId = state.session.sessionId;
  const done = await api.endSession(state.cls._id);
  sessionEnded(done, sessionId);
}, event.currentTarget));

byId("today-summary").addEventListener("click", () => send("TODAY_SUMMARY", {}));
