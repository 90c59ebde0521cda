// The teacher's participation dashboard (/static/dashboard.html): pick a class and one of
// its sessions (the newest by default) and see each student's participation: the table,
// the timelines, the polls, the exports. While the session runs the page loads it again
// every few seconds; once it has ended the figures are final and the page stops.
// Plain ES modules like the classroom page, whose REST client and token it shares.
import { ApiError } from "./api.js";
import { byId, el, show } from "./dom.js";
import { CLASS_KEY } from "./state.js";
import { currentToken, signedIn, signedOut, wireSignIn } from "./dashboard_auth.js";
import { DashboardApi } from "./dashboard_data.js";
import { clearDownload, exportCsv, exportJson } from "./dashboard_export.js";
import { clock, day } from "./dashboard_format.js";
import { LiveRefresh, REFRESH_MS } from "./dashboard_live.js";
import { errorText, showMessage } from "./dashboard_messages.js";
import { renderPolls } from "./dashboard_polls.js";
import { renderTable } from "./dashboard_table.js";
import { renderTimelines } from "./dashboard_timeline.js";

const dashboardApi = new DashboardApi(currentToken);
const live = new LiveRefresh();
const page = { me: null, classes: [], classId: null, sessions: [], sessionId: null, report: null };

// ── names ─────────────────────────────────────────────────────────────────────────
/** Who a user id is, for "override by …" and moderation: me, a student, or the id. */
function nameOf(userId) {
  if (page.me && userId === page.me._id) return page.me.name;
  const student = page.report && page.report.students.find((row) => row.studentId === userId);
  return (student && student.name) || String(userId);
}

function sessionLabel(session) {
  const start = `${day(session.startedAt)} ${clock(session.startedAt)}`;
  return session.isActive ? `${start} (live)` : `${start} to ${clock(session.endedAt)}`;
}

function classLabel(cls) {
  return cls.isActive ? `${cls.className} (live)` : cls.className;
}

// ── what is on show ───────────────────────────────────────────────────────────────
function setState(kind, text) {
  const line = byId("session-state");
  line.dataset.state = kind;
  line.textContent = text;
}

function showReport(report) {
  page.report = report;
  renderTable(report, nameOf);
  renderTimelines(report, nameOf);
  renderPolls(report);
  byId("export-csv").disabled = report === null;
  byId("export-json").disabled = report === null;
  if (report === null) return;
  const listed = page.sessions.find((session) => session.sessionId === report.sessionId);
  if (listed) {
    Object.assign(listed, { isActive: report.isActive, endedAt: report.endedAt });
    const option = byId("session-select").querySelector(
      `option[value="${CSS.escape(report.sessionId)}"]`);
    if (option) option.textContent = sessionLabel(listed);
  }
  // The newest session says whether the class is live now.
  const cls = page.classes.find((item) => item._id === report.classId);
  if (cls && page.sessions[0] && page.sessions[0].sessionId === report.sessionId) {
    cls.isActive = report.isActive;
    const option = byId("class-select").querySelector(`option[value="${CSS.escape(cls._id)}"]`);
    if (option) option.textContent = classLabel(cls);
  }
  if (report.isActive) {
    setState("live", `Live: updating every ${REFRESH_MS / 1000} s (last update `
      + `${clock(new Date().toISOString())}).`);
  } else {
    const summary = report.summary;
    const counts = summary
      ? ` ${summary.present} present, ${summary.absent} absent of ${summary.total}.`
      : "";
    setState("final", `Final: the session ended at ${clock(report.endedAt)}.${counts}`);
  }
}

function remember() {
  const params = new URLSearchParams();
  if (page.classId) params.set("classId", page.classId);
  if (page.sessionId) params.set("sessionId", page.sessionId);
  history.replaceState(null, "", `${location.pathname}?${params}`);
}

// ── loading ───────────────────────────────────────────────────────────────────────
function failed(error) {
  if (error instanceof ApiError && error.status === 401) {
    leave();
    signedOut("Your sign-in is no longer valid; please log in again.");
    return false;
  }
  showMessage(errorText(error));
  // A live session is tried again after a network or server hiccup; a refusal is final.
  const retry = !(error instanceof ApiError)
    || error.status === 0 || error.status === 429 || error.status >= 500;
  return retry && (page.report === null || page.report.isActive);
}

function showSession(sessionId) {
  clearDownload();
  page.sessionId = sessionId;
  remember();
  showReport(null);
  setState("loading", "Loading…");
  return live.start(async (isCurrent) => {
    const report = await dashboardApi.participation(page.classId, sessionId);
    if (!isCurrent()) return false;
    showReport(report);
    return report.isActive;
  }, failed);
}

async function selectClass(classId, sessionId = null) {
  live.stop();
  clearDownload();
  page.classId = classId;
  page.sessionId = null;
  byId("class-select").value = classId;
  const sessions = await dashboardApi.sessions(classId);
  if (page.classId !== classId) return; // another class was picked meanwhile
  page.sessions = sessions;
  byId("session-select").replaceChildren(...sessions.map((session) =>
    el("option", { value: session.sessionId }, sessionLabel(session))));
  byId("session-select").disabled = sessions.length === 0;
  if (sessions.length === 0) {
    remember();
    showReport(null);
    setState("none", "This class has had no session yet.");
    return;
  }
  const chosen = sessions.some((session) => session.sessionId === sessionId)
    ? sessionId : sessions[0].sessionId;
  byId("session-select").value = chosen;
  await showSession(chosen);
}

async function loadClasses(wanted) {
  page.classes = await dashboardApi.classes();
  byId("class-select").replaceChildren(...page.classes.map((cls) =>
    el("option", { value: cls._id }, classLabel(cls))));
  byId("class-select").disabled = page.classes.length === 0;
  if (page.classes.length === 0) {
    showReport(null);
    setState("none", "You have no classes yet.");
    return null;
  }
  const known = (id) => id && page.classes.some((cls) => cls._id === id);
  return [wanted, sessionStorage.getItem(CLASS_KEY)].find(known) || page.classes[0]._id;
}

async function enter() {
  const me = await dashboardApi.me();
  page.me = me;
  signedIn(me);
  if (me.role !== "teacher") {
    show(byId("app"), false);
    showMessage("The participation dashboard is for teachers.");
    return;
  }
  show(byId("app"));
  const params = new URLSearchParams(location.search);
  const classId = await loadClasses(params.get("classId"));
  if (classId) await selectClass(classId, params.get("sessionId"));
}

function leave() {
  live.stop();
  clearDownload();
  Object.assign(page, { me: null, classes: [], classId: null, sessions: [], sessionId: null });
  showReport(null);
}

/** Run a user's action with its button disabled; a failure becomes a message. */
async function guarded(action, button = null) {
  if (button) button.disabled = true;
  try {
    await action();
  } catch (error) {
    failed(error);
  } finally {
    if (button) button.disabled = false;
    byId("export-csv").disabled = page.report === null;
    byId("export-json").disabled = page.report === null;
  }
}

// ── wiring ────────────────────────────────────────────────────────────────────────
wireSignIn(dashboardApi, enter, leave);
byId("class-select").addEventListener("change", (event) => {
  const classId = event.currentTarget.value;
  guarded(() => selectClass(classId));
});
byId("session-select").addEventListener("change", (event) => {
  const sessionId = event.currentTarget.value;
  guarded(() => showSession(sessionId));
});
byId("refresh").addEventListener("click", (event) => guarded(async () => {
  const classId = await loadClasses(page.classId);
  if (classId) await selectClass(classId, page.sessionId);
}, event.currentTarget));
byId("export-csv").addEventListener("click", (event) => guarded(
  () => exportCsv(dashboardApi, page.classId, page.report.sessionId), event.currentTarget));
byId("export-json").addEventListener("click", () => {
  if (page.report) exportJson(page.report);
});

if (currentToken()) {
  enter().catch((error) => {
    const expired = error instanceof ApiError && error.status === 401;
    signedOut(expired ? "Your sign-in has expired; please log in again." : null);
    if (!expired) showMessage(errorText(error));
  });
} else {
  signedOut();
}
