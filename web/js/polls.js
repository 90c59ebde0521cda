// Polls: the teacher's form (a question, 2 to 10 options, anonymous or not: POLL_START),
// the open poll (ROOM_JOINED.poll, POLL_STARTED): one button per option for a student
// (POLL_VOTE; POLL_VOTED marks the stored choice, which they may change), the live counts
// and End button for the teacher (POLL_COUNTS, POLL_END), and the result everyone sees
// when it ends (POLL_RESULT). Every text is set with textContent.
import { byId, el, show } from "./dom.js";
import { isTeacher, state } from "./state.js";
import { send } from "./connection.js";

const MIN_OPTIONS = 2;
const MAX_OPTIONS = 10;

const panel = byId("polls-panel");
const form = byId("poll-form");
const question = byId("poll-question");
const optionList = byId("poll-option-list");
const addOption = byId("poll-option-add");
const anonymous = byId("poll-anonymous");
const startButton = byId("poll-start");
const current = byId("poll-current");
const result = byId("poll-result");

let open = null;      // {pollId, question, options, anonymous, myVote, counts, voters}
let ended = null;     // the last POLL_RESULT
let starting = false; // POLL_START sent, no POLL_STARTED or ERROR yet
let voting = null;    // the option of my POLL_VOTE on its way

function optionInput(value = "") {
  const input = el("input", {
    class: "poll-option-input", maxlength: 200, autocomplete: "off",
    dataset: { testid: "poll-option-input" },
  });
  input.value = value;
  const remove = el("button", {
    type: "button", class: "poll-option-remove", dataset: { testid: "poll-option-remove" },
  }, "Remove");
  const item = el("li", { class: "poll-option-row", dataset: { testid: "poll-option-row" } },
                  input, remove);
  remove.addEventListener("click", () => {
    if (optionList.children.length <= MIN_OPTIONS) return;
    item.remove();
    renderForm();
  });
  return item;
}

function resetForm() {
  question.value = "";
  anonymous.checked = false;
  optionList.replaceChildren(...Array.from({ length: MIN_OPTIONS }, () => optionInput()));
  renderForm();
}

addOption.addEventListener("click", () => {
  if (optionList.children.length >= MAX_OPTIONS) return;
  optionList.append(optionInput());
  renderForm();
  optionList.lastElementChild.querySelector("input").focus();
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!state.inRoom || !isTeacher() || open || starting) return;
  const options = [...optionList.querySelectorAll("input")].map((input) => input.value.trim());
  const payload = { question: question.value.trim(), options, anonymous: anonymous.checked };
  if (!send("POLL_START", payload)) return;
  starting = true;
  renderForm();
});

/** ROOM_JOINED.poll: the open poll (with myVote; the teacher's with counts), or null. */
export function pollJoined(poll) {
  starting = false;
  voting = null;
  ended = null;
  open = poll && poll.pollId ? normalise(poll) : null;
  render();
}

/** Out of the room: no poll is shown. */
export function pollsLeft() {
  starting = false;
  voting = null;
  open = null;
  ended = null;
  render();
}

/** POLL_STARTED {pollId, question, options, anonymous, at} */
export function pollStarted(data) {
  if (!state.inRoom || !data.pollId) return;
  if (starting && isTeacher()) resetForm();
  starting = false;
  voting = null;
  ended = null;
  open = normalise(data);
  render();
}

/** POLL_VOTED {pollId, option}: my vote is stored. */
export function pollVoted(data) {
  if (!open || data.pollId !== open.pollId) return;
  voting = null;
  open.myVote = Number(data.option);
  render();
}

/** POLL_COUNTS {pollId, counts, voters}: the teacher's live counts. */
export function pollCounts(data) {
  if (!open || data.pollId !== open.pollId) return;
  open.counts = Array.isArray(data.counts) ? data.counts.map(Number) : open.counts;
  open.voters = Number(data.voters) || 0;
  render();
}

/** POLL_RESULT {pollId, question, options, anonymous, at, counts, voters, endedAt} */
export function pollResult(data) {
  if (!state.inRoom || !data.pollId) return;
  const mine = open && open.pollId === data.pollId ? open.myVote : null;
  ended = { ...normalise(data), myVote: mine };
  if (open && open.pollId === data.pollId) open = null;
  voting = null;
  render();
}

/** ERROR answering a POLL_* request: the controls work again (the message shows as usual). */
export function pollRefused(answering) {
  if (answering === "POLL_START") starting = false;
  if (answering === "POLL_VOTE") voting = null;
  render();
}

function normalise(poll) {
  const options = Array.isArray(poll.options) ? poll.options.map(String) : [];
  return {
    pollId: String(poll.pollId),
    question: String(poll.question ?? ""),
    options,
    anonymous: poll.anonymous === true,
    myVote: Number.isInteger(poll.myVote) ? poll.myVote : null,
    counts: Array.isArray(poll.counts) ? poll.counts.map(Number) : options.map(() => 0),
    voters: Number(poll.voters) || 0,
  };
}

function renderForm() {
  const rows = optionList.children.length;
  for (const [index, row] of [...optionList.children].entries()) {
    row.querySelector("input").setAttribute("aria-label", `Option ${index + 1}`);
    row.querySelector("button").setAttribute("aria-label", `Remove option ${index + 1}`);
    row.querySelector("button").disabled = rows <= MIN_OPTIONS;
  }
  addOption.disabled = rows >= MAX_OPTIONS;
  startButton.disabled = !state.inRoom || starting || open !== null;
  form.setAttribute("aria-busy", String(starting));
}

function render() {
  const teacher = isTeacher();
  show(panel, state.inRoom || open !== null || ended !== null);
  show(form, teacher && state.inRoom && open === null);
  renderForm();
  show(byId("poll-empty"), open === null && ended === null && !teacher);
  renderOpen(teacher);
  renderResult();
}

function renderOpen(teacher) {
  show(current, open !== null);
  if (!open) {
    current.replaceChildren();
    return;
  }
  const poll = open;
  const items = poll.options.map((text, option) => {
    const item = el("li", { class: "poll-option", dataset: { testid: "poll-option", option } });
    if (teacher) {
      item.append(el("span", { class: "poll-option-text", dataset: { testid: "poll-option-text" } },
                     text),
                  el("span", { class: "poll-count", dataset: { testid: "poll-count" } },
                     String(poll.counts[option] ?? 0)));
    } else {
      const chosen = poll.myVote === option;
      const vote = el("button", {
        type: "button", class: "poll-vote", "aria-pressed": String(chosen),
        dataset: { testid: "poll-vote", option, chosen: String(chosen) },
      }, text);
      vote.disabled = !state.inRoom || voting !== null;
      vote.addEventListener("click", () => {
        if (voting !== null || !state.inRoom || poll !== open) return;
        if (send("POLL_VOTE", { pollId: poll.pollId, option })) {
          voting = option;
          render();
        }
      });
      item.dataset.chosen = String(chosen);
      item.append(vote);
      if (chosen) {
        item.append(el("span", { class: "badge", dataset: { testid: "poll-my-vote" } },
                       "Your vote"));
      }
    }
    return item;
  });
  const children = [
    el("p", { class: "poll-question-text", dataset: { testid: "poll-question-text" } },
       poll.question),
    poll.anonymous ? el("p", { class: "hint", dataset: { testid: "poll-anonymous-note" } },
                        "Anonymous: the record keeps who voted, not what they chose.") : null,
    el("ol", { class: "poll-options", dataset: { testid: "poll-options" } }, ...items),
  ];
  if (teacher) {
    const end = el("button", { type: "button", dataset: { testid: "poll-end" } }, "End poll");
    end.disabled = !state.inRoom;
    end.addEventListener("click", () => {
      if (poll === open && send("POLL_END", { pollId: poll.pollId })) end.disabled = true;
    });
    children.push(el("p", { class: "poll-voters", dataset: { testid: "poll-voters" } },
                     `${poll.voters} voted`), end);
  } else {
    children.push(el("p", { class: "hint", dataset: { testid: "poll-vote-status" } },
                     poll.myVote === null ? "Choose an answer." :
                     "Your vote is in; you may change it until the poll ends."));
  }
  current.replaceChildren(...children.filter((child) => child !== null));
}

function renderResult() {
  show(result, ended !== null);
  if (!ended) {
    result.replaceChildren();
    return;
  }
  const total = ended.counts.reduce((sum, count) => sum + count, 0);
  const items = ended.options.map((text, option) => {
    const count = ended.counts[option] ?? 0;
    const share = total > 0 ? Math.round((100 * count) / total) : 0;
    const bar = el("span", { class: "poll-bar", "aria-hidden": "true" });
    bar.style.width = `${share}%`;
    return el("li", { class: "poll-result-option", dataset: { testid: "poll-result-option", option,
                                                              chosen: String(ended.myVote === option) } },
      el("span", { class: "poll-option-text", dataset: { testid: "poll-result-text" } }, text),
      el("span", { class: "poll-count", dataset: { testid: "poll-result-count" } }, String(count)),
      el("span", { class: "poll-bar-track" }, bar));
  });
  result.replaceChildren(
    el("h4", {}, "Poll result"),
    el("p", { class: "poll-question-text", dataset: { testid: "poll-result-question" } },
       ended.question),
    el("ol", { class: "poll-options" }, ...items),
    el("p", { class: "poll-voters", dataset: { testid: "poll-result-voters" } },
       `${ended.voters} voted`));
}

resetForm();
render();
