// The classroom page: sign in, pick a class, take part in its live session.
// Plain ES modules, no build step. Protocol: docs/api.md (REST) and docs/protocol.md (WebSocket).
import { Api, ApiError } from "./js/api.js";
import { attr, byId, el, show } from "./js/dom.js";
import { RoomMedia } from "./js/media.js";
import { ClassSocket } from "./js/socket.js";

const TOKEN_KEY = "classroom.token";
const CLASS_KEY = "classroom.classId";
const RELAY_KEY = "classroom.relayOnly"; // localStorage: "1" = iceTransportPolicy "relay"
const POLL_MS = 2000;              // how often the selected class's session state is re-read
const CLASS_LIST_EVERY = 3;        // ...and the class list, every this many polls
const DISCONNECTED_GRACE_MS = 4000; // a "disconnected" peer connection gets this long to recover
const NOT_YET_UPDATED = "not yet updated";

const api = new Api(() => state.token);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  me: null,                 // {_id, name, email, role}
  classes: null,            // null until loaded
  cls: null,                // the selected class, with `students`
  session: { isActive: false, sessionId: null, ended: false },
  endedSessionId: null,     // DONE shown for this session already
  socket: null,
  pollTimer: null,
  pollCount: 0,
  wantInRoom: false,        // the user asked to be in the room (rejoin after drops)
  joinPending: false,
  inRoom: false,
  recording: false,         // the room is being recorded (RECORDING / ROOM_JOINED)
  media: null,
  mediaStates: { publish: "new", subscribe: "new" },
  disconnectTimer: null,
  mediaRestarts: 0,         // consecutive media failures (more backoff each time)
  localStream: null,
  localStreamPromise: null,
  camOn: true,
  micOn: true,
  participants: new Map(),  // userId -> {userId, name, role, audio, video, stream, tile}
  marks: new Map(),         // studentId -> status (teacher's view of this session)
  presence: new Map(),      // userId -> true while in the room (from room events / ROSTER)
  speaker: null,
  rosterRequested: false,   // a ROSTER request is waiting for its answer
  rosterUnsupported: false, // the server answered it with "Unknown event"
};

// Measurements the browser tests read (epoch milliseconds, comparable across tabs).
const metrics = { joinClickedAt: null, firstFrameAt: {}, roomJoins: 0 };
window.classroomMetrics = metrics;
const now = () => performance.timeOrigin + performance.now();

const isTeacher = () => state.me !== null && state.me.role === "teacher";

// ───────────────────────────── messages ─────────────────────────────

const MAX_MESSAGES = 5;

function showMessage(text, kind = "error") {
  const box = byId("messages");
  const close = el("button", { type: "button", "aria-label": "Dismiss message" }, "×");
  const message = el(
    "div",
    { class: `message ${kind}`, dataset: { testid: "message", kind } },
    el("span", {}, el("span", { class: "kind" }, kind === "error" ? "Error:" : "Note:"), text),
    close,
  );
  close.addEventListener("click", () => message.remove());
  box.append(message);
  while (box.children.length > MAX_MESSAGES) box.firstElementChild.remove();
  if (kind === "info") setTimeout(() => message.remove(), 10000);
}

function clearMessages() {
  byId("messages").replaceChildren();
}

/** Run an action from a button or form; any failure becomes a visible message. */
async function guarded(action, button = null) {
  if (button) button.disabled = true;
  try {
    await action();
  } catch (error) {
    reportError(error);
  } finally {
    if (button) button.disabled = false;
    refreshControls();
  }
}

function reportError(error) {
  if (error instanceof ApiError && error.status === 401 && state.token) {
    logout("Your sign-in is no longer valid; please log in again.");
    return;
  }
  showMessage(error instanceof Error ? error.message : String(error));
}

window.addEventListener("unhandledrejection", (event) => {
  showMessage(`Unexpected problem: ${event.reason && event.reason.message || event.reason}`);
});
window.addEventListener("error", (event) => {
  showMessage(`Unexpected problem: ${event.message}`);
});

// ───────────────────────────── sign in / out ─────────────────────────────

async function enterApp() {
  state.me = await api.me();
  byId("whoami-name").textContent = state.me.name;
  byId("whoami-role").textContent = state.me.role;
  show(byId("whoami"));
  show(byId("auth"), false);
  show(byId("app"));
  for (const element of document.querySelectorAll(".teacher-only")) show(element, isTeacher());
  await loadClasses();
  const remembered = sessionStorage.getItem(CLASS_KEY);
  if (remembered && state.classes.some((cls) => cls._id === remembered)) {
    await selectClass(remembered);
  }
}

async function login(email, password) {
  const { token } = await api.login(email, password);
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  clearMessages();
  await enterApp();
}

function logout(reason = null) {
  closeClass();
  state.token = null;
  state.me = null;
  state.classes = null;
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(CLASS_KEY);
  show(byId("app"), false);
  show(byId("whoami"), false);
  byId("whoami-name").textContent = "";
  byId("whoami-role").textContent = "";
  show(byId("auth"));
  byId("class-list").replaceChildren();
  if (reason) showMessage(reason);
}

byId("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  guarded(() => login(form.email.value.trim(), form.password.value),
          form.querySelector("button"));
});

byId("signup-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  guarded(async () => {
    const email = form.email.value.trim();
    await api.signup(form.name.value.trim(), email, form.password.value, form.role.value);
    await login(email, form.password.value);
    showMessage(`Welcome, ${state.me.name}! Your ${state.me.role} account is ready.`, "info");
  }, form.querySelector("button"));
});

byId("logout").addEventListener("click", () => logout());

// ───────────────────────────── classes ─────────────────────────────

async function loadClasses() {
  const classes = await api.classes();
  if (JSON.stringify(classes) === JSON.stringify(state.classes)) return;
  state.classes = classes;
  renderClassList();
}

function renderClassList() {
  const list = byId("class-list");
  list.replaceChildren(...state.classes.map((cls) => {
    const live = Boolean(cls.isActive);
    const button = el(
      "button",
      {
        type: "button",
        dataset: { testid: "class-item", classId: cls._id, live: String(live) },
        "aria-current": state.cls && state.cls._id === cls._id ? "true" : "false",
      },
      el("span", { class: "class-name" }, cls.className),
      el("span", { class: "live-badge", dataset: { testid: "class-live", live: String(live) } },
         live ? "Live now" : "Not live"),
    );
    button.addEventListener("click", () => guarded(() => selectClass(cls._id)));
    return el("li", {}, button);
  }));
  show(byId("classes-empty"), state.classes.length === 0);
}

function setClassLive(classId, live) {
  const cls = (state.classes || []).find((item) => item._id === classId);
  if (cls && cls.isActive !== live) {
    cls.isActive = live;
    renderClassList();
  }
}

byId("refresh-classes").addEventListener("click", (event) =>
  guarded(loadClasses, event.currentTarget));

byId("create-class-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  guarded(async () => {
    const created = await api.createClass(form.className.value.trim());
    form.reset();
    await loadClasses();
    await selectClass(created._id);
    showMessage(`Class "${created.className}" created.`, "info");
  }, form.querySelector("button"));
});

async function selectClass(classId) {
  if (state.cls && state.cls._id === classId) {
    applyRoomState(await api.room(classId)); // already open: just refresh
    return;
  }
  closeClass();
  const [cls, room] = await Promise.all([api.getClass(classId), api.room(classId)]);
  state.cls = cls;
  sessionStorage.setItem(CLASS_KEY, classId);
  state.marks.clear();
  state.presence.clear();
  byId("class-title").textContent = cls.className;
  document.title = `${cls.className} — Classroom`;
  show(byId("classroom"));
  show(byId("teacher-panel"), isTeacher());
  show(byId("student-panel"), !isTeacher());
  byId("summary").textContent = "";
  show(byId("live-roster"), false);
  state.rosterRequested = false;
  byId("my-status").textContent = "—";
  delete byId("my-status").dataset.status;
  renderClassList();
  applyRoomState(room, { initial: true });
  openSocket();
  startPolling();
  if (isTeacher()) {
    renderRoster();
    await loadEnrolChoices();
  } else {
    await loadMyHistory();
  }
}

function closeClass() {
  stopPolling();
  leaveRoomLocally();
  state.wantInRoom = false;
  if (state.socket) state.socket.close();
  state.socket = null;
  state.cls = null;
  state.session = { isActive: false, sessionId: null, ended: false };
  show(byId("classroom"), false);
}

// ───────────────────────────── session state ─────────────────────────────

function applyRoomState(room, { initial = false } = {}) {
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

function sessionEnded(done, sessionId = state.session.sessionId) {
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
  } else if (state.cls) {
    loadMyHistory({ final: true }).catch(reportError);
  }
}

function summaryText(data, label) {
  const parts = [`${data.present ?? 0} present`, `${data.absent ?? 0} absent`];
  if (data.late) parts.push(`${data.late} late`);
  return `${label}: ${parts.join(", ")}, ${data.total ?? 0} total.`;
}

function renderSessionStatus() {
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

function startPolling() {
  stopPolling();
  state.pollCount = 0;
  state.pollTimer = setInterval(poll, POLL_MS);
}

function stopPolling() {
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

// ───────────────────────────── the class socket ─────────────────────────────

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const params = new URLSearchParams({ token: state.token, classId: state.cls._id });
  return `${scheme}://${location.host}/ws?${params}`;
}

function openSocket() {
  state.socket = new ClassSocket({
    url: socketUrl,
    onEvent: handleEvent,
    onStatus: (socketState, detail) => {
      const status = byId("socket-status");
      status.textContent = detail;
      status.dataset.state = socketState;
      if (socketState === "reconnecting" && (state.inRoom || state.joinPending)) {
        // The server drops our room membership with the socket: rejoin once it is back.
        leaveRoomLocally({ keepTiles: true });
        setSelfConnection("reconnecting");
        for (const participant of state.participants.values()) {
          setTileConnection(participant, "reconnecting");
        }
      }
    },
    onOpen: (reconnected) => guarded(() => socketOpened(reconnected)),
    onFatal: (message) => logout(`${message}. Please log in again.`),
  });
  state.socket.connect();
}

async function socketOpened(reconnected) {
  if (reconnected && state.cls) {
    const wanted = state.wantInRoom;
    applyRoomState(await api.room(state.cls._id));
    if (!state.session.isActive && wanted) {
      state.wantInRoom = false;
      leaveRoomLocally();
      showMessage("The session ended while you were disconnected.", "info");
    }
  }
  if (state.wantInRoom && state.session.isActive) {
    sendJoin();
  } else if (!isTeacher() && state.session.isActive) {
    requestMyAttendance();
  }
  requestRoster();
}

function send(event, data = {}) {
  if (state.socket && state.socket.send(event, data)) return true;
  showMessage(`Not connected to the server (could not send ${event}); it will retry shortly.`);
  return false;
}

function handleEvent(event, data) {
  switch (event) {
    case "ROOM_JOINED": roomJoined(data); break;
    case "PEER_JOINED": peerJoined(data); break;
    case "PEER_LEFT": peerLeft(data); break;
    case "MEDIA_STATE": mediaState(data); break;
    case "ACTIVE_SPEAKER": activeSpeaker(data); break;
    case "ROSTER": roster(data); break;
    case "RECORDING": recordingChanged(data); break;
    case "WEBRTC_OFFER": if (state.media) state.media.handleOffer(data); break;
    case "WEBRTC_ANSWER": if (state.media) state.media.handleAnswer(data); break;
    case "WEBRTC_ICE_CANDIDATE": if (state.media) state.media.handleCandidate(data); break;
    case "ATTENDANCE_MARKED": attendanceMarked(data); break;
    case "TODAY_SUMMARY": byId("summary").textContent = summaryText(data, "Today so far"); break;
    case "MY_ATTENDANCE": setMyStatus(data.status); break;
    case "DONE": sessionEnded(data); break;
    case "ERROR": serverError(data); break;
    default: break; // newer server events this page does not know yet
  }
}

const MEDIA_FAILED = /media connection failed/i;

function serverError(data) {
  const message = String(data.message || "The server reported an error");
  if (state.rosterRequested) {
    state.rosterRequested = false;
    if (message === "Unknown event") {
      state.rosterUnsupported = true; // an older server: live roster only from room events
      return;
    }
    // The session ended while the background refresh was on its way: DONE tells the rest.
    if (message === "No active attendance session") return;
  }
  if (state.inRoom && MEDIA_FAILED.test(message)) {
    // The server gave up on our media and removed us from the room: join again.
    restartMedia(message.replace(/[.;].*$/, "").toLowerCase());
    return;
  }
  if (state.joinPending) {
    state.joinPending = false;
    state.wantInRoom = false;
    leaveRoomLocally();
    showMessage(`Could not join the room: ${message}`);
    renderSessionStatus();
    return;
  }
  showMessage(message);
}

// ───────────────────────────── attendance ─────────────────────────────

function requestMyAttendance() {
  if (state.socket && state.socket.isOpen) state.socket.send("MY_ATTENDANCE", {});
}

function setMyStatus(status) {
  const element = byId("my-status");
  const text = status || NOT_YET_UPDATED;
  element.textContent = text;
  element.dataset.status = status && status !== NOT_YET_UPDATED ? status : "unknown";
}

async function loadMyHistory({ final = false } = {}) {
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
  if (final) setMyStatus(latest.status ? `${latest.status}` : NOT_YET_UPDATED);
}

function attendanceMarked(data) {
  if (!data.studentId) return;
  state.marks.set(data.studentId, data.status);
  if (isTeacher()) renderRoster();
  else if (state.me && data.studentId === state.me._id) setMyStatus(data.status);
}

function renderRoster() {
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
    el("td", {}, ...buttons));
}

async function loadEnrolChoices() {
  const students = await api.students();
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

// ---------------------------------------------------------------- recording

/** RECORDING {active, recordingId, reason?} (also ROOM_JOINED.recording): indicator for
 *  everyone in the room, start/stop toggle for the teacher (enabled only in the room). */
function recordingChanged(data) {
  state.recording = Boolean(data.active);
  show(byId("recording-indicator"), state.recording);
  const toggle = byId("recording-toggle");
  toggle.disabled = !state.inRoom;
  toggle.textContent = state.recording ? "Stop recording" : "Start recording";
  byId("recording-status").textContent = state.recording
    ? "Recording"
    : (data.reason ? `Recording stopped: ${data.reason}` : "");
}

byId("recording-toggle").addEventListener("click", () =>
  send(state.recording ? "RECORDING_STOP" : "RECORDING_START", {}));

// ROSTER: the teacher's live view. Its shape is not fixed yet, so accept a list of entries under
// a few likely keys (or a map keyed by user id), merge presence and status into the roster
// table, and list every simple field of each entry, with readable labels for known ones.
const ROSTER_LABELS = {
  inRoom: (value) => (value ? "in room" : "not in room"),
  connected: (value) => (value ? "media connected" : "media not connected"),
  audio: (value) => (value ? "mic on" : "mic off"),
  video: (value) => (value ? "camera on" : "camera off"),
  status: (value) => `status ${value}`,
  source: (value) => `marked by ${value}`,
  presenceSeconds: (value) => `present for ${Math.round(Number(value))} s`,
  firstJoin: (value) => `first joined ${new Date(value).toLocaleTimeString()}`,
  role: (value) => String(value),
};
const ROSTER_HIDDEN = new Set(["userId", "studentId", "_id", "id", "name"]);

function rosterEntries(data) {
  const list = Array.isArray(data)
    ? data
    : data.students || data.roster || data.participants || data.users;
  if (Array.isArray(list)) return list.filter((entry) => entry && typeof entry === "object");
  if (list && typeof list === "object") {
    return Object.entries(list)
      .filter(([, value]) => value && typeof value === "object")
      .map(([userId, value]) => ({ userId, ...value }));
  }
  return [];
}

function roster(data) {
  state.rosterRequested = false;
  const items = rosterEntries(data).map((entry) => {
    const userId = String(entry.userId || entry.studentId || entry._id || entry.id || "");
    const presence = entry.inRoom ?? entry.present ?? entry.online ?? entry.presence;
    if (userId && presence !== undefined && presence !== null) {
      state.presence.set(userId, presence === true || presence === "present" ||
                                 presence === "online" || presence === "in room");
    }
    const status = entry.status ?? entry.attendance;
    if (userId && typeof status === "string" && status) state.marks.set(userId, status);
    const details = Object.entries(entry)
      .filter(([key, value]) => !ROSTER_HIDDEN.has(key) && value !== null &&
                                 value !== undefined && typeof value !== "object")
      .map(([key, value]) => (ROSTER_LABELS[key] ? ROSTER_LABELS[key](value) : `${key}: ${value}`));
    return el("li", { dataset: { testid: "live-roster-item", userId } },
              el("strong", {}, entry.name || userId || "participant"),
              details.length ? ` — ${details.join(", ")}` : "");
  });
  byId("live-roster-list").replaceChildren(...items);
  show(byId("live-roster"), isTeacher() && items.length > 0);
  renderRoster();
}

/** Ask for a fresh roster (teachers, live session); dropped if the server does not know it. */
function requestRoster() {
  if (!isTeacher() || !state.session.isActive || state.rosterUnsupported) return;
  if (state.socket && state.socket.isOpen && state.socket.send("ROSTER", {})) {
    state.rosterRequested = true;
  }
}

// ───────────────────────────── the live room ─────────────────────────────

byId("join-room").addEventListener("click", () => {
  metrics.joinClickedAt = now();
  metrics.firstFrameAt = {};
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

function sendJoin() {
  state.joinPending = true;
  show(byId("room"));
  setSelfConnection("connecting");
  refreshControls();
  if (state.socket && state.socket.isOpen) state.socket.send("JOIN_ROOM", {});
  // else: the socket's open handler sends it.
}

function ensureLocalStream() {
  if (!state.localStreamPromise) {
    state.localStreamPromise = navigator.mediaDevices
      .getUserMedia({ audio: true, video: { width: 640, height: 360 } })
      .then((stream) => {
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
        state.localStreamPromise = null;
        return null;
      });
  }
  return state.localStreamPromise;
}

function stopLocalStream() {
  if (state.localStream) for (const track of state.localStream.getTracks()) track.stop();
  state.localStream = null;
  state.localStreamPromise = null;
  byId("self-video").srcObject = null;
}

function applyLocalMediaState(tellServer) {
  if (state.localStream) {
    for (const track of state.localStream.getVideoTracks()) track.enabled = state.camOn;
    for (const track of state.localStream.getAudioTracks()) track.enabled = state.micOn;
  }
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

async function roomJoined(data) {
  if (!state.wantInRoom) return; // left before the server answered (LEAVE_ROOM follows it)
  metrics.roomJoins += 1;
  state.joinPending = false;
  state.inRoom = true;
  if (data.sessionId) state.session.sessionId = data.sessionId;
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
    onTrack: (userId, stream) => remoteTrack(userId, stream),
    onError: (message) => showMessage(`Media problem: ${message}`),
  });
  state.media = media;
  const stream = await ensureLocalStream();
  if (state.media !== media) return; // left or dropped meanwhile
  if (stream) {
    media.publish(stream);
    if (!state.camOn || !state.micOn) send("MEDIA_STATE", { audio: state.micOn, video: state.camOn });
  } else {
    setSelfConnection("connected", "in the room (not sending)");
  }
}

function leaveRoomLocally({ keepTiles = false } = {}) {
  state.joinPending = false;
  state.inRoom = false;
  recordingChanged({ active: false });
  if (state.disconnectTimer !== null) clearTimeout(state.disconnectTimer);
  state.disconnectTimer = null;
  if (state.media) state.media.close();
  state.media = null;
  state.mediaStates = { publish: "new", subscribe: "new" };
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

function restartMedia(reason) {
  if (!state.wantInRoom || !state.socket) return;
  state.mediaRestarts += 1;
  showMessage(`Reconnecting: ${reason}.`, "info");
  setSelfConnection("reconnecting");
  // Dropping the socket makes the server forget our room membership; the reconnect path
  // (socket backoff, then JOIN_ROOM) builds everything again. Repeated media failures back
  // off further even though the socket itself reconnects fine.
  state.socket.drop(state.mediaRestarts - 1);
}

function visibleState(pcState) {
  switch (pcState) {
    case "connected": return "connected";
    case "disconnected": return "reconnecting";
    case "failed": return "failed";
    case "closed": return "closed";
    default: return "connecting";
  }
}

function setSelfConnection(connection, text = connection) {
  const badge = byId("self-tile").querySelector("[data-testid=self-connection]");
  badge.textContent = text;
  badge.dataset.state = connection;
  byId("self-tile").dataset.connection = connection;
}

function upsertParticipant(info) {
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

function removeParticipant(userId) {
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

function refreshTileConnection(participant) {
  const subscribe = state.mediaStates.subscribe;
  let text;
  if (!state.inRoom) text = "reconnecting";
  else if (!participant.stream) text = subscribe === "failed" ? "failed" : "connecting";
  else text = visibleState(subscribe);
  setTileConnection(participant, text);
}

function setTileConnection(participant, text) {
  const badge = participant.tile.querySelector("[data-testid=tile-connection]");
  badge.textContent = text;
  badge.dataset.state = text;
  participant.tile.dataset.connection = text;
}

function remoteTrack(userId, stream) {
  if (!userId || userId === state.me._id) return; // unlabelled: wait for the server's mapping
  const participant = state.participants.get(userId) || upsertParticipant({ userId });
  const video = participant.tile.querySelector("video");
  participant.stream = stream;
  if (video.srcObject !== stream) {
    video.srcObject = stream;
    stream.addEventListener("removetrack", () => {
      if (stream.getTracks().length === 0 && participant.stream === stream) {
        participant.stream = null;
        participant.tile.dataset.playing = "false";
        refreshTileConnection(participant);
      }
    });
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
    if (!(participant.userId in metrics.firstFrameAt)) {
      metrics.firstFrameAt[participant.userId] = now();
    }
  };
  if ("requestVideoFrameCallback" in video) video.requestVideoFrameCallback(seen);
  else video.addEventListener("playing", seen, { once: true });
}

function peerJoined(data) {
  if (!data.userId || data.userId === state.me._id) return;
  upsertParticipant(data);
  if (isTeacher()) renderRoster();
}

function peerLeft(data) {
  if (!data.userId) return;
  removeParticipant(data.userId);
  if (isTeacher()) renderRoster();
}

function mediaState(data) {
  const participant = state.participants.get(data.userId);
  if (!participant) return;
  if (typeof data.audio === "boolean") participant.audio = data.audio;
  if (typeof data.video === "boolean") participant.video = data.video;
  renderTile(participant);
}

function activeSpeaker(data) {
  setSpeaker(data.userId || null);
}

function setSpeaker(userId) {
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

// ───────────────────────────── controls ─────────────────────────────

function refreshControls() {
  if (!state.cls) return;
  const active = state.session.isActive;
  const joined = state.inRoom || state.joinPending || (state.wantInRoom && active);
  const join = byId("join-room");
  join.disabled = !active || joined;
  show(join, !joined);
  show(byId("leave-room"), joined);
  show(byId("toggle-camera"), joined);
  show(byId("toggle-mic"), joined);
  if (isTeacher()) {
    byId("start-session").disabled = active;
    byId("end-session").disabled = !active;
    byId("today-summary").disabled = !active;
  }
}

// Exposed for the browser tests and for debugging from the console.
window.classroom = {
  state,
  dropConnection: () => state.socket && state.socket.drop(),
  selector: (userId) => `[data-testid=remote-tile][data-user-id="${attr(userId)}"]`,
};

// ───────────────────────────── start ─────────────────────────────

if (state.token) {
  enterApp().catch((error) => {
    const expired = error instanceof ApiError && error.status === 401;
    logout(expired ? "Your sign-in has expired; please log in again." : null);
    if (!expired) reportError(error);
  });
}
