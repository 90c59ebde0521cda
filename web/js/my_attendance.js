// A student's own attendance: the live status in this session (asked with MY_ATTENDANCE,
// pushed with MY_ATTENDANCE_UPDATED) and the history of finished sessions.
import { byId, el } from "./dom.js";
import { api, isTeacher, NOT_YET_UPDATED, state } from "./state.js";

export function requestMyAttendance() {
  if (state.socket && state.socket.isOpen) state.socket.send("MY_ATTENDANCE", {});
}

/**
 * Show my status (null: not yet updated). `reply`: the answer to MY_ATTENDANCE, which may
 * have been computed before a push that arrived first; within one session a status is
 * never taken back, so such a late "not yet updated" leaves the pushed status alone.
 */
export function setMyStatus(status, { reply = false, sessionId = state.session.sessionId } = {}) {
  const value = status && status !== NOT_YET_UPDATED ? status : null;
  const known = state.myStatus.sessionId === sessionId ? state.myStatus.status : null;
  if (reply && value === null && known) return;
  state.myStatus = { sessionId, status: value };
  const element = byId("my-status");
  element.textContent = value || NOT_YET_UPDATED;
  element.dataset.status = value || "unknown";
}

/** MY_ATTENDANCE_UPDATED {classId, sessionId, status, source, final}. */
export function myStatusPushed(data) {
  if (isTeacher() || !state.cls || data.classId !== state.cls._id) return;
  // Once a session's final status is shown, a provisional one still on its way is stale.
  if (!data.final && data.sessionId === state.endedSessionId) return;
  setMyStatus(data.status, { sessionId: data.sessionId });
}

/** ATTENDANCE_MARKED {studentId, status}, broadcast to the class: mine if it names me. */
export function myMarkBroadcast(data) {
  if (state.me && data.studentId === state.me._id) setMyStatus(data.status);
}

export async function loadMyHistory({ final = false } = {}) {
  const classId = state.cls._id;
  const [latest, history] = await Promise.all([api.myAttendance(classId), api.myHistory(classId)]);
  if (!state.cls || state.cls._id !== classId) return;
  const list = byId("my-history");
  if (history.length) {
    list.replaceChildren(...history.map((entry, index) => el(
      "li", { dataset: { testid: "history-item", status: entry.status } },
      index === 0 ? "Latest finished session: " : `${new Date(entry.startedAt).toLocaleString()}: `,
      el("strong", { class: "status-text", dataset: { status: entry.status } }, entry.status),
      ` — in class ${Math.round(entry.presenceSeconds || 0)} s` +
        (entry.source === "teacher" ? " (marked by the teacher)" : ""),
    )));
  } else {
    list.replaceChildren(el("li", { dataset: { testid: "history-empty" } },
                            "No finished session yet."));
  }
  if (final) setMyStatus(latest.status || null);
}
