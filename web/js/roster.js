// The teacher's roster: every enrolled student with presence and status (live from ROSTER
// and ATTENDANCE_MARKED, the stored final statuses once the session ended), the marking
// buttons, the server's live roster list, and the enrol form.
import { byId, el, show } from "./dom.js";
import { api, isTeacher, state } from "./state.js";
import { guarded, reportError, showMessage } from "./messages.js";
import { send } from "./connection.js";
import { renderRosterModeration } from "./moderation.js";

export function renderRoster() {
  if (!isTeacher() || !state.cls) return;
  const students = state.cls.students || [];
  const body = byId("roster-body");
  const rows = new Map([...body.children].map((row) => [row.dataset.studentId, row]));
  students.forEach((student, index) => {
    const row = rows.get(student._id) || buildRosterRow(student);
    rows.delete(student._id);
    if (body.children[index] !== row) body.insertBefore(row, body.children[index] || null);
    // Updated in place, so keyboard focus stays on the button that was pressed.
    const status = state.marks.get(student._id) || "not marked";
    const inRoom = state.presence.get(student._id) === true;
    const presence = row.querySelector("[data-testid=roster-presence]");
    presence.textContent = inRoom ? "In room" : "Not in room";
    presence.dataset.present = String(inRoom);
    const statusText = row.querySelector("[data-testid=roster-status]");
    statusText.textContent = status;
    statusText.dataset.status = status;
    for (const button of row.querySelectorAll("button")) button.disabled = !state.session.isActive;
    renderRosterModeration(row, student);
  });
  for (const row of rows.values()) row.remove();
  show(byId("roster-empty"), students.length === 0);
}

function buildRosterRow(student) {
  const buttons = ["present", "absent"].map((mark) => {
    const button = el("button", {
      type: "button",
      dataset: { testid: `mark-${mark}` },
      "aria-label": `Mark ${student.name} ${mark}`,
    }, mark === "present" ? "Present" : "Absent");
    button.addEventListener("click", () =>
      send("ATTENDANCE_MARKED", { studentId: student._id, status: mark }));
    return button;
  });
  return el("tr", { dataset: { testid: "roster-row", studentId: student._id } },
    el("th", { scope: "row", dataset: { testid: "roster-name" } }, student.name),
    el("td", { dataset: { testid: "roster-presence" } }),
    el("td", {}, el("span", { class: "status-text", dataset: { testid: "roster-status" } })),
    el("td", {}, ...buttons),
    el("td", { class: "roster-moderation", dataset: { testid: "roster-moderation" } }));
}

/** ATTENDANCE_MARKED {studentId, status}: a teacher's mark in this session. */
export function attendanceMarked(data) {
  if (!data.studentId) return;
  state.marks.set(data.studentId, data.status);
  renderRoster();
}

/** After DONE: the statuses the server stored (GET /class/:id/sessions/:sessionId). */
export async function showFinalStatuses(classId, sessionId) {
  const report = await api.sessionReport(classId, sessionId);
  const current = state.cls && state.cls._id === classId && state.endedSessionId === sessionId;
  if (!current || state.session.isActive) return; // moved on meanwhile
  state.marks.clear();
  for (const row of report.students || []) {
    if (row.studentId && row.status) state.marks.set(row.studentId, row.status);
  }
  renderRoster();
}

// ROSTER {classId, sessionId, startedAt, students: [...], participants: [...]}: merged into
// the table, and every simple field of each student listed with a readable label.
const ROSTER_LABELS = {
  inRoom: (value) => (value ? "in room" : "not in room"),
  connected: (value) => (value ? "media connected" : "media not connected"),
  audio: (value) => (value ? "mic on" : "mic off"),
  video: (value) => (value ? "camera on" : "camera off"),
  status: (value) => `status ${value}`,
  source: (value) => `marked by ${value}`,
  presenceSeconds: (value) => `present for ${Math.round(Number(value))} s`,
  firstJoin: (value) => `first joined ${new Date(value).toLocaleTimeString()}`,
};
const ROSTER_HIDDEN = new Set(["userId", "name"]);

export function roster(data) {
  // One built before the session ended can arrive after DONE: the stored statuses win.
  if (!state.session.isActive || data.sessionId !== state.session.sessionId) return;
  const students = Array.isArray(data.students) ? data.students : [];
  const items = students.filter((entry) => entry && entry.userId).map((entry) => {
    const userId = String(entry.userId);
    state.presence.set(userId, entry.inRoom === true);
    if (typeof entry.status === "string" && entry.status) state.marks.set(userId, entry.status);
    const details = Object.entries(entry)
      .filter(([key, value]) => !ROSTER_HIDDEN.has(key) && value !== null &&
                                 value !== undefined && typeof value !== "object")
      .map(([key, value]) => (ROSTER_LABELS[key] ? ROSTER_LABELS[key](value) : `${key}: ${value}`));
    return el("li", { dataset: { testid: "live-roster-item", userId } },
              el("strong", {}, entry.name || userId),
              details.length ? ` — ${details.join(", ")}` : "");
  });
  byId("live-roster-list").replaceChildren(...items);
  show(byId("live-roster"), items.length > 0);
  renderRoster();
}

/** Ask for a fresh roster (teachers, live session). */
export function requestRoster() {
  if (!isTeacher() || !state.session.isActive) return;
  if (state.socket && state.socket.isOpen) state.socket.send("ROSTER", {});
}

// ───────────────────────────── enrolment ─────────────────────────────

export async function loadEnrolChoices() {
  const classId = state.cls._id;
  const students = await api.students();
  if (!state.cls || state.cls._id !== classId) return;
  const enrolled = new Set((state.cls.students || []).map((student) => student._id));
  const select = byId("enrol-student");
  const chosen = select.value; // keep a choice made while the list was being refreshed
  const choices = students.filter((student) => !enrolled.has(student._id));
  select.replaceChildren(
    el("option", { value: "" }, choices.length ? "Choose a student…" : "No other students"),
    ...choices.map((student) =>
      el("option", { value: student._id }, `${student.name} <${student.email}>`)),
  );
  if (choices.some((student) => student._id === chosen)) select.value = chosen;
}

/** STUDENT_SIGNED_UP {student}: a new account to choose from. */
export function studentSignedUp() {
  if (isTeacher() && state.cls) loadEnrolChoices().catch(reportError);
}

byId("enrol-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  guarded(async () => {
    const studentId = form.studentId.value;
    if (!studentId) throw new Error("Choose a student to enrol.");
    const option = form.studentId.selectedOptions[0];
    await api.enrol(state.cls._id, studentId);
    state.cls = await api.getClass(state.cls._id);
    renderRoster();
    await loadEnrolChoices();
    showMessage(`Enrolled ${option ? option.textContent : "the student"}.`, "info");
  }, form.querySelector("button"));
});
