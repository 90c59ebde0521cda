// Recording the live room: the indicator everyone in the room sees, the teacher's toggle.
import { byId, show } from "./dom.js";
import { state } from "./state.js";
import { send } from "./connection.js";

/** RECORDING {active, recordingId, reason?} (also ROOM_JOINED.recording): indicator for
 *  everyone in the room, start/stop toggle for the teacher (enabled only in the room). */
export function recordingChanged(data) {
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
