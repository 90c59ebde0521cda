// The dashboard's table: one row per student of the session, every figure of their
// participation. Each cell keeps the server's number in data-value next to its text.
import { byId, el, show } from "./dom.js";
import { actionText, clock, duration, percent, score } from "./dashboard_format.js";

function time(iso, testid) {
  const cell = el("td", { dataset: { testid } });
  if (iso) cell.append(el("time", { datetime: iso, title: iso }, clock(iso)));
  else cell.append("—");
  return cell;
}

function number(testid, value, text = String(value ?? 0), title = undefined) {
  return el("td", { class: "num", title, dataset: { testid, value: String(value ?? 0) } }, text);
}

function seconds(testid, value) {
  return number(testid, value, duration(value), `${Number(value || 0).toFixed(1)} seconds`);
}

function statusCell(row, nameOf) {
  const status = row.status || "not yet";
  const cell = el(
    "td",
    { dataset: { testid: "cell-status", status: row.status || "", source: row.source || "" } },
    el("span", { class: `status ${row.status || "none"}` }, status),
  );
  if (row.source) cell.append(" ", el("span", { class: "source" }, `(${row.source})`));
  if (row.source === "teacher" && row.override) {
    cell.append(el("div", { class: "sub", dataset: { testid: "override" } },
                   `override by ${nameOf(row.override.by)} at ${clock(row.override.at)}`));
  }
  return cell;
}

function moderationCell(row, nameOf) {
  const actions = row.moderation || [];
  const cell = el("td", { dataset: { testid: "cell-moderation", value: String(actions.length) } });
  if (actions.length === 0) {
    cell.append("—");
    return cell;
  }
  cell.append(el("ul", { class: "actions" }, ...actions.map((item) => el(
    "li", { dataset: { testid: "moderation-action", action: item.action || "" } },
    `${actionText(item.action)} by ${nameOf(item.by)} at ${clock(item.at)}`,
  ))));
  return cell;
}

function chatCell(row) {
  const cell = number("cell-chat", row.chatMessages);
  if (row.chatDeleted) {
    cell.append(el("div", { class: "sub", dataset: { testid: "chat-deleted" } },
                   `${row.chatDeleted} deleted`));
  }
  return cell;
}

function studentRow(row, nameOf) {
  return el(
    "tr",
    { dataset: { testid: "participation-row", studentId: row.studentId } },
    el("th", { scope: "row", dataset: { testid: "cell-name" } },
       el("span", { class: "name" }, row.name || row.studentId),
       row.email ? el("div", { class: "sub email" }, row.email) : null),
    statusCell(row, nameOf),
    number("cell-presence", row.presenceRatio, percent(row.presenceRatio),
           `${duration(row.presenceSeconds)} in the room`),
    time(row.firstJoin, "cell-first-join"),
    time(row.lastLeave, "cell-last-leave"),
    seconds("cell-camera", row.cameraSeconds),
    seconds("cell-mic", row.micSeconds),
    seconds("cell-talk", row.talkSeconds),
    chatCell(row),
    number("cell-hands", row.handsRaised),
    number("cell-polls", row.pollVotes),
    moderationCell(row, nameOf),
    number("cell-score", row.activityScore, score(row.activityScore)),
  );
}

/** Show `report` (GET .../participation data); `nameOf(userId)` names who acted. */
export function renderTable(report, nameOf) {
  const students = report ? report.students : [];
  byId("participation-rows").replaceChildren(...students.map((row) => studentRow(row, nameOf)));
  show(byId("students-empty"), report !== null && students.length === 0);
  byId("score-formula").textContent = report ? report.scoreFormula : "";
  const policy = report && report.policy;
  byId("policy").textContent = policy
    ? `Status from presence: present at ${percent(policy.presentRatio)} of the session or `
      + `more; late when first in the room over ${duration(policy.lateAfterSeconds)} after `
      + "the start."
    : "";
}
