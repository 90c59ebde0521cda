// How the participation dashboard writes numbers and times. Pure functions, no DOM.

const pad = (value) => String(value).padStart(2, "0");

/** A share (0..1) as a percentage with one decimal: 0.8734 → "87.3%". Rounds half up on
 *  the tenths of a percent in integers, so the text is the same whichever program makes it. */
export function percent(ratio) {
  const tenths = Math.floor(Number(ratio || 0) * 1000 + 0.5);
  return `${Math.floor(tenths / 10)}.${tenths % 10}%`;
}

/** Seconds as a short duration: "0 s", "42 s", "3 min 05 s", "1 h 02 min". */
export function duration(seconds) {
  const total = Math.round(Number(seconds || 0));
  if (total < 60) return `${total} s`;
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return `${minutes} min ${pad(total % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${pad(minutes % 60)} min`;
}

/** An ISO time as the local wall clock, "14:03:12"; "—" for none. */
export function clock(iso) {
  if (!iso) return "—";
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "—";
  return `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}`;
}

/** An ISO time's local date, "2026-12-07". */
export function day(iso) {
  if (!iso) return "—";
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "—";
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}`;
}

/** The activity score (0..10, one decimal from the server) as text: "4.3". */
export function score(value) {
  return Number(value || 0).toFixed(1);
}

/** Moderation actions as people say them. */
const ACTIONS = {
  mute: "muted",
  stop_camera: "camera stopped",
  stop_screen: "screen share stopped",
  remove: "removed",
  readmit: "readmitted",
  allow_unmute: "allowed to unmute",
};

export function actionText(action) {
  return ACTIONS[action] || String(action);
}
