// The dashboard's polls: each question with its options and final counts (an open poll has
// no counts yet: the server stores them when it ends).
import { byId, el, show } from "./dom.js";
import { clock } from "./dashboard_format.js";

function optionItem(text, count, total) {
  const share = total > 0 && count !== null ? count / total : 0;
  const bar = el("span", { class: "poll-bar", "aria-hidden": "true" });
  bar.style.width = `${Math.round(share * 100)}%`;
  return el(
    "li",
    { dataset: { testid: "poll-option", count: count === null ? "" : String(count) } },
    el("span", { class: "poll-option-text", dataset: { testid: "poll-option-text" } }, text),
    el("span", { class: "poll-count", dataset: { testid: "poll-count" } },
       count === null ? "—" : String(count)),
    el("span", { class: "poll-track" }, bar),
  );
}

function pollItem(poll) {
  const counts = Array.isArray(poll.counts) ? poll.counts : null;
  const total = counts ? counts.reduce((sum, n) => sum + Number(n || 0), 0) : 0;
  const open = !poll.endedAt;
  const when = open
    ? `started ${clock(poll.startedAt)}, still open: counts when it ends`
    : `${clock(poll.startedAt)}–${clock(poll.endedAt)}, ${total} vote${total === 1 ? "" : "s"}`;
  return el(
    "li",
    { class: "poll", dataset: { testid: "poll", pollId: poll.pollId, open: String(open) } },
    el("div", { class: "poll-question", dataset: { testid: "poll-question" } }, poll.question),
    el("div", { class: "sub" }, when, poll.anonymous ? " · anonymous" : ""),
    el("ol", { class: "poll-options" },
       ...(poll.options || []).map((text, index) =>
         optionItem(text, counts ? Number(counts[index] || 0) : null, total))),
  );
}

export function renderPolls(report) {
  const polls = report ? report.polls || [] : [];
  byId("polls").replaceChildren(...polls.map(pollItem));
  show(byId("polls-empty"), polls.length === 0);
}
