// The class list (with its live badges), creating a class, and opening or closing one.
import { byId, el, show } from "./dom.js";
import { api, CLASS_KEY, isTeacher, state } from "./state.js";
import { guarded, reportError, showMessage } from "./messages.js";
import { connectSocket, disconnectSocket } from "./connection.js";
import { applyRoomState, startPolling, stopPolling } from "./session.js";
import { leaveRoomLocally } from "./room.js";
import { loadEnrolChoices, renderRoster } from "./roster.js";
import { loadMyHistory } from "./my_attendance.js";

export async function loadClasses() {
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

export function setClassLive(classId, live) {
  const cls = (state.classes || []).find((item) => item._id === classId);
  if (cls && cls.isActive !== live) {
    cls.isActive = live;
    renderClassList();
  }
}

/** ENROLLED_IN_CLASS {class}: a teacher enrolled me; the list shows it without a refresh. */
export function enrolledInClass(data) {
  if (!state.me || !data.class) return;
  loadClasses()
    .then(() => showMessage(`You were enrolled in "${data.class.className}".`, "info"))
    .catch(reportError);
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

export async function selectClass(classId) {
  if (state.cls && state.cls._id === classId) {
    applyRoomState(await api.room(classId)); // already open: just refresh
    return;
  }
  closeClass();
  let cls;
  let room;
  try {
    [cls, room] = await Promise.all([api.getClass(classId), api.room(classId)]);
  } catch (error) {
    connectSocket(); // no class open after all: pushes about me still need a socket
    throw error;
  }
  state.cls = cls;
  sessionStorage.setItem(CLASS_KEY, classId);
  state.marks.clear();
  state.presence.clear();
  state.myStatus = { sessionId: null, status: null };
  byId("class-title").textContent = cls.className;
  document.title = `${cls.className} — Classroom`;
  show(byId("classroom"));
  show(byId("teacher-panel"), isTeacher());
  show(byId("student-panel"), !isTeacher());
  byId("summary").textContent = "";
  show(byId("live-roster"), false);
  byId("my-status").textContent = "—";
  delete byId("my-status").dataset.status;
  renderClassList();
  applyRoomState(room, { initial: true });
  connectSocket();
  startPolling();
  if (isTeacher()) {
    renderRoster();
    await loadEnrolChoices();
  } else {
    await loadMyHistory();
  }
}

/** Leave the open class (and its room); its socket closes with it. */
export function closeClass() {
  stopPolling();
  leaveRoomLocally();
  state.wantInRoom = false;
  disconnectSocket();
  state.cls = null;
  state.session = { isActive: false, sessionId: null, ended: false };
  show(byId("classroom"), false);
}
