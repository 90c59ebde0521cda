// Which room and session buttons are enabled and shown, from the current state.
import { byId, show } from "./dom.js";
import { isTeacher, state } from "./state.js";

export function refreshControls() {
  if (!state.cls) return;
  const active = state.session.isActive;
  const joined = state.inRoom || state.joinPending || (state.wantInRoom && active);
  const join = byId("join-room");
  join.disabled = !active || joined;
  show(join, !joined);
  show(byId("leave-room"), joined);
  show(byId("toggle-camera"), joined);
  show(byId("toggle-mic"), joined);
  // Students share only in a class that allows it (GET /class/:id allowStudentScreenShare).
  show(byId("toggle-screen"), joined && (isTeacher() || Boolean(state.cls.allowStudentScreenShare)));
  if (isTeacher()) {
    byId("start-session").disabled = active;
    byId("end-session").disabled = !active;
    byId("today-summary").disabled = !active;
  }
}
