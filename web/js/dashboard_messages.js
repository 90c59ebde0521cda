// Errors and notices at the top of the dashboard (as on the classroom page, without its
// sign-out and room handling). A message repeated while it still shows is not added twice.
import { byId, el } from "./dom.js";

const MAX_MESSAGES = 5;
const INFO_MS = 10000;

export function showMessage(text, kind = "error") {
  const box = byId("messages");
  for (const shown of box.querySelectorAll("[data-testid=message-text]")) {
    if (shown.textContent === text) return;
  }
  const close = el("button", { type: "button", "aria-label": "Dismiss message" }, "×");
  const message = el(
    "div",
    { class: `message ${kind}`, dataset: { testid: "message", kind } },
    el("span", {},
       el("span", { class: "kind" }, kind === "error" ? "Error:" : "Note:"),
       el("span", { dataset: { testid: "message-text" } }, text)),
    close,
  );
  close.addEventListener("click", () => message.remove());
  box.append(message);
  while (box.children.length > MAX_MESSAGES) box.firstElementChild.remove();
  if (kind === "info") setTimeout(() => message.remove(), INFO_MS);
}

export function clearMessages() {
  byId("messages").replaceChildren();
}

export function errorText(error) {
  return error instanceof Error ? error.message : String(error);
}
