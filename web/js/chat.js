// The room's chat: the message list (ROOM_JOINED.chat, then CHAT as it comes; CHAT_DELETED
// takes one out), the input and Send button, and the teacher's delete button per message.
// Text is text: every part of a message is set with textContent, never parsed as HTML.
import { attr, byId, el, show } from "./dom.js";
import { isTeacher, state } from "./state.js";
import { send } from "./connection.js";

const MAX_TEXT = 2000;   // the server's limit (docs/protocol.md, CHAT)
const MAX_SHOWN = 300;   // messages kept in the list; older ones drop off the top
const STICK_PX = 40;     // within this of the bottom, a new message scrolls the list down

const list = byId("chat-list");
const form = byId("chat-form");
const input = byId("chat-input");
const sendButton = byId("chat-send");

// The text of my CHAT on its way: my own copy of it is the acknowledgement, an ERROR
// answering CHAT the refusal. One at a time, so each answer is matched to its message.
let pending = null;

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value;
  if (pending !== null || !state.inRoom || !text.trim()) return;
  if (text.length > MAX_TEXT) return; // the input's maxlength keeps typing under it
  if (!send("CHAT", { text })) return;
  pending = text;
  renderControls();
});

/** ROOM_JOINED: the room's last messages replace whatever the list showed. */
export function chatJoined(messages) {
  pending = null;
  list.replaceChildren();
  for (const message of Array.isArray(messages) ? messages : []) addMessage(message);
  list.scrollTop = list.scrollHeight;
  renderControls();
}

/** Out of the room (left, dropped, the session ended). */
export function chatLeft({ keepMessages = false } = {}) {
  pending = null; // an answer, if any, went with the old socket
  if (!keepMessages) {
    list.replaceChildren();
    input.value = ""; // a draft is kept over a reconnect, not past leaving (or signing out)
  }
  renderControls();
}

/** CHAT {messageId, userId, name, role, text, at} */
export function chatReceived(message) {
  if (!state.inRoom) return;
  const stick = list.scrollHeight - list.scrollTop - list.clientHeight < STICK_PX;
  const mine = state.me !== null && message.userId === state.me._id;
  addMessage(message);
  if (mine && pending !== null && message.text === pending) {
    if (input.value === pending) input.value = ""; // unless edited meanwhile
    pending = null;
    renderControls();
  }
  if (stick || mine) list.scrollTop = list.scrollHeight;
}

/** CHAT_DELETED {messageId, by, at} */
export function chatDeleted(data) {
  if (data.messageId) messageItem(data.messageId)?.remove();
  renderEmpty();
}

/** ERROR answering CHAT or CHAT_DELETE: the text stays in the input, to send again. */
export function chatRefused(answering) {
  if (answering === "CHAT") {
    pending = null;
    renderControls();
    input.focus();
  } else if (answering === "CHAT_DELETE") {
    for (const button of list.querySelectorAll("[data-testid=chat-delete]")) button.disabled = false;
  }
}

function messageItem(messageId) {
  return list.querySelector(`[data-testid=chat-message][data-message-id="${attr(messageId)}"]`);
}

function addMessage(message) {
  if (!message || !message.messageId || messageItem(message.messageId)) return;
  const messageId = String(message.messageId);
  const role = String(message.role || "");
  const at = new Date(message.at);
  const time = Number.isNaN(at.getTime()) ? null : el("time", {
    class: "chat-time", datetime: at.toISOString(), dataset: { testid: "chat-time" },
    title: at.toLocaleString(),
  }, at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
  const name = String(message.name || "Participant");
  const item = el("li", {
    class: "chat-message",
    dataset: { testid: "chat-message", messageId, userId: String(message.userId || ""), role },
  },
  el("div", { class: "chat-meta" },
     el("span", { class: "chat-name", dataset: { testid: "chat-name" } }, name),
     role === "teacher" ? el("span", { class: "badge role" }, "teacher") : null,
     time,
     isTeacher() ? deleteButton(messageId, name) : null),
  el("p", { class: "chat-text", dataset: { testid: "chat-text" } }, String(message.text ?? "")));
  list.append(item);
  while (list.children.length > MAX_SHOWN) list.firstElementChild.remove();
  renderEmpty();
}

function deleteButton(messageId, name) {
  const button = el("button", {
    type: "button", class: "chat-delete", dataset: { testid: "chat-delete" },
    "aria-label": `Delete message from ${name}`, title: "Delete message",
  }, "Delete");
  button.addEventListener("click", () => {
    if (send("CHAT_DELETE", { messageId })) button.disabled = true;
  });
  return button;
}

function renderEmpty() {
  show(byId("chat-empty"), list.children.length === 0);
}

function renderControls() {
  input.disabled = !state.inRoom;
  sendButton.disabled = !state.inRoom || pending !== null;
  form.setAttribute("aria-busy", String(pending !== null));
  renderEmpty();
}
