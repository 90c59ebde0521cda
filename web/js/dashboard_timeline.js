// The dashboard's timelines, hand-written SVG: per student, the session from its start to
// its end (or now, while it runs) with a bar for each stretch in the room, a band inside it
// while the camera was on and another while the student talked, and a marker for each chat
// message, raised hand and moderation decision. Every bar and marker says what it is in
// data-mark (presence, camera, talking, chat, hand, moderation) and when in data-at /
// data-start (data-end is empty for a span still open).
import { byId, el } from "./dom.js";
import { actionText, clock, percent } from "./dashboard_format.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 1000;
const HEIGHT = 48;
const BAR_Y = 14;
const BAR_H = 20;
const BAND_H = 6;
const TICK_STEPS_S = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
const MAX_TICKS = 8;

/** An SVG element with attributes (textContent via `text`, a <title> via `title`). */
function svg(tag, attributes = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null) continue;
    if (name === "text") node.textContent = String(value);
    else if (name === "title") node.append(svg("title", { text: value }));
    else if (name === "dataset") {
      for (const [key, data] of Object.entries(value)) {
        node.setAttribute(`data-${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
                          String(data));
      }
    } else node.setAttribute(name, String(value));
  }
  return node;
}

/** Every time the report names, in epoch ms (to stretch the span over clock skew). */
function latestTime(report) {
  let latest = -Infinity;
  const see = (iso) => {
    const t = Date.parse(iso);
    if (!Number.isNaN(t)) latest = Math.max(latest, t);
  };
  for (const row of report.students) {
    for (const [start, end] of row.intervals || []) { see(start); see(end); }
    for (const [start, end] of [...(row.cameraSpans || []), ...(row.talkSpans || [])]) {
      see(start);
      if (end) see(end);
    }
    for (const at of row.chatAt || []) see(at);
    for (const at of row.handsAt || []) see(at);
    for (const item of row.moderation || []) see(item.at);
  }
  return latest;
}

/** The x axis of `report`: {start, end} in epoch ms and x(iso or ms) in viewBox units. */
export function sessionScale(report, now = Date.now()) {
  const start = Date.parse(report.startedAt);
  const end = report.endedAt
    ? Date.parse(report.endedAt)
    : Math.max(now, latestTime(report), start + 1000);
  const span = Math.max(end - start, 1000);
  const x = (time) => {
    const t = typeof time === "number" ? time : Date.parse(time);
    const share = Math.min(Math.max((t - start) / span, 0), 1);
    return Math.round(share * WIDTH * 10) / 10;
  };
  return { start, end: start + span, x };
}

function axis(scale) {
  const seconds = (scale.end - scale.start) / 1000;
  const step = TICK_STEPS_S.find((s) => seconds / s <= MAX_TICKS)
    || TICK_STEPS_S[TICK_STEPS_S.length - 1];
  const root = svg("svg", {
    viewBox: `0 0 ${WIDTH} 22`, class: "timeline-axis", "aria-hidden": "true",
    dataset: { testid: "timeline-axis" },
  });
  root.append(svg("line", { x1: 0, x2: WIDTH, y1: 20, y2: 20, class: "axis-line" }));
  const first = Math.ceil(scale.start / 1000 / step) * step * 1000;
  for (let t = first; t <= scale.end; t += step * 1000) {
    const x = scale.x(t);
    root.append(svg("line", { x1: x, x2: x, y1: 15, y2: 20, class: "axis-tick" }));
    if (x > 30 && x < WIDTH - 30) {
      root.append(svg("text", { x, y: 12, "text-anchor": "middle", class: "axis-label",
                                text: clock(new Date(t).toISOString()) }));
    }
  }
  return root;
}

function presenceBars(row, scale) {
  return (row.intervals || []).map(([start, end]) => {
    const x1 = scale.x(start);
    const x2 = scale.x(end);
    return svg("rect", {
      x: x1, y: BAR_Y, width: Math.max(x2 - x1, 1), height: BAR_H, class: "bar presence",
      dataset: { mark: "presence", start, end }, title: `In the room ${clock(start)}–${clock(end)}`,
    });
  });
}

/** Bands inside the presence bar: camera on (top), talking (bottom). An open span runs to
 * the end of the scale (now, while the session runs). */
function mediaBands(spans, scale, mark, y, what) {
  return (spans || []).map(([start, end]) => {
    const x1 = scale.x(start);
    const x2 = scale.x(end || scale.end);
    const until = end ? clock(end) : "now";
    return svg("rect", {
      x: x1, y, width: Math.max(x2 - x1, 1), height: BAND_H, class: `band ${mark}`,
      dataset: { mark, start, end: end || "" }, title: `${what} ${clock(start)}–${until}`,
    });
  });
}

function chatMarkers(row, scale) {
  return (row.chatAt || []).map((at) => svg("circle", {
    cx: scale.x(at), cy: 7, r: 4.5, class: "marker chat",
    dataset: { mark: "chat", at }, title: `Chat message at ${clock(at)}`,
  }));
}

function handMarkers(row, scale) {
  return (row.handsAt || []).map((at) => {
    const x = scale.x(at);
    return svg("polygon", {
      points: `${x},${BAR_Y + BAR_H + 3} ${x - 5},${HEIGHT - 1} ${x + 5},${HEIGHT - 1}`,
      class: "marker hand", dataset: { mark: "hand", at }, title: `Hand raised at ${clock(at)}`,
    });
  });
}

function moderationMarkers(row, scale, nameOf) {
  return (row.moderation || []).map((item) => {
    const x = scale.x(item.at);
    const mid = BAR_Y + BAR_H / 2;
    return svg("polygon", {
      points: `${x},${mid - 7} ${x + 6},${mid} ${x},${mid + 7} ${x - 6},${mid}`,
      class: "marker moderation",
      dataset: { mark: "moderation", at: item.at, action: item.action || "" },
      title: `${actionText(item.action)} by ${nameOf(item.by)} at ${clock(item.at)}`,
    });
  });
}

function studentTimeline(row, scale, nameOf) {
  const name = row.name || row.studentId;
  const chats = (row.chatAt || []).length;
  const hands = (row.handsAt || []).length;
  const root = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "timeline", role: "img",
    "aria-label": `${name}: in the room ${percent(row.presenceRatio)} of the session, `
      + `${chats} chat message${chats === 1 ? "" : "s"}, ${hands} hand${hands === 1 ? "" : "s"} `
      + "raised",
    dataset: { testid: "timeline-svg" },
  });
  root.append(
    svg("rect", { x: 0, y: BAR_Y, width: WIDTH, height: BAR_H, class: "span",
                  dataset: { part: "span" } }),
    ...presenceBars(row, scale),
    ...mediaBands(row.cameraSpans, scale, "camera", BAR_Y + 2, "Camera on"),
    ...mediaBands(row.talkSpans, scale, "talking", BAR_Y + BAR_H - BAND_H - 2, "Talking"),
    ...moderationMarkers(row, scale, nameOf),
    ...chatMarkers(row, scale),
    ...handMarkers(row, scale),
  );
  return el("div", { class: "timeline-row", dataset: { testid: "timeline",
                                                       studentId: row.studentId } },
            el("span", { class: "timeline-name" }, name), root);
}

/** Draw `report`'s timelines (nothing for no report); `nameOf(userId)` names who acted. */
export function renderTimelines(report, nameOf) {
  const box = byId("timelines");
  if (!report || report.students.length === 0) {
    box.replaceChildren();
    return;
  }
  const scale = sessionScale(report);
  box.replaceChildren(
    el("div", { class: "timeline-row axis-row" }, el("span", { class: "timeline-name" }),
       axis(scale)),
    ...report.students.map((row) => studentTimeline(row, scale, nameOf)),
  );
}
