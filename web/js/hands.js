// Raised hands: my Raise/Lower toggle, the room's queue in the order the hands went up
// (ROOM_JOINED.hands, then HAND; a member who leaves takes their hand down), the ✋ on the
// raised people's tiles, and the teacher's Lower buttons (HAND_LOWER).
import { byId, el, show } from "./dom.js";
import { isTeacher, state } from "./state.js";
import { showMessage } from "./messages.js";
import { send } from "./connection.js";

const toggle = byId("toggle-hand");
const queue = byId("hands-queue");
const lowerAll = byId("hands-lower-all");

toggle.addEventListener("click", () => {
  if (state.inRoom) send("HAND", { raised: !myHandUp() });
});

lowerAll.addEventListener("click", () => {
  if (state.inRoom && state.hands.size > 0) send("HAND_LOWER", { all: true });
});

/** ROOM_JOINED: the raised hands, in the order they went up. */
export function handsJoined(hands) {
  state.hands.clear();
  for (const hand of Array.isArray(hands) ? hands : []) {
    if (hand && hand.userId) state.hands.set(String(hand.userId), hand.at || null);
  }
  renderHands();
}

/** Out of the room: nobody's hand is known any more. */
export function handsLeft() {
  state.hands.clear();
  renderHands();
}

/** HAND {userId, raised, at, by}: a hand went up (to the end of the queue) or down. */
export function handChanged(data) {
  if (!data.userId || !state.inRoom) return;
  const userId = String(data.userId);
  if (data.raised === true) {
    if (!state.hands.has(userId)) state.hands.set(userId, data.at || null);
  } else if (state.hands.delete(userId) && userId === myId() && data.by && data.by !== userId) {
    showMessage("The teacher lowered your hand.", "info");
  }
  renderHands();
}

/** PEER_LEFT {userId}: leaving the room lowers the hand (the server sends no HAND for it). */
export function handLeft(data) {
  if (data.userId && state.hands.delete(String(data.userId))) renderHands();
}

const myId = () => (state.me ? state.me._id : null);
const myHandUp = () => state.hands.has(myId());

function nameOf(userId) {
  if (userId === myId()) return `${state.me.name} (you)`;
  const participant = state.participants.get(userId);
  if (participant) return participant.name;
  const student = state.cls && (state.cls.students || []).find((s) => s._id === userId);
  return student ? student.name : "Participant";
}

function renderHands() {
  const up = myHandUp();
  toggle.disabled = !state.inRoom;
  toggle.textContent = up ? "Lower hand" : "Raise hand";
  toggle.setAttribute("aria-pressed", String(up));

  const teacher = isTeacher();
  queue.replaceChildren(...[...state.hands].map(([userId, at], index) => {
    const name = nameOf(userId);
    const when = at ? new Date(at) : null;
    const item = el("li", { class: "hand-item", dataset: { testid: "hand-item", userId } },
      el("span", { class: "hand-position" }, `${index + 1}.`),
      el("span", { class: "hand-name", dataset: { testid: "hand-name" } }, name),
      when && !Number.isNaN(when.getTime())
        ? el("time", { class: "hand-time", datetime: when.toISOString() },
             when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }))
        : null);
    if (teacher) {
      const lower = el("button", {
        type: "button", class: "hand-lower", dataset: { testid: "hand-lower" },
        "aria-label": `Lower ${name}'s hand`,
      }, "Lower");
      lower.addEventListener("click", () => send("HAND_LOWER", { userId }));
      item.append(lower);
    }
    return item;
  }));
  show(byId("hands-empty"), state.hands.size === 0);
  show(lowerAll, teacher);
  lowerAll.disabled = !state.inRoom || state.hands.size === 0;

  // The ✋ on the tiles: mine, and every other participant's (tiles.js reads state.hands
  // when it builds one).
  renderHandBadge(byId("self-tile"), "self-hand", up);
  for (const participant of state.participants.values()) {
    renderHandBadge(participant.tile, "tile-hand", state.hands.has(participant.userId));
  }
}

export function renderHandBadge(tile, testid, raised) {
  tile.dataset.hand = raised ? "raised" : "down";
  show(tile.querySelector(`[data-testid=${testid}]`), raised);
}
