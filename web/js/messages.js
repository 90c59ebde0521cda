// Errors and notices at the top of the page, and the guard every user action runs in.
import { ApiError } from "./api.js";
import { byId, el } from "./dom.js";
import { state } from "./state.js";
import { logout } from "./account.js";
import { refreshControls } from "./controls.js";

const MAX_MESSAGES = 5;
const INFO_MS = 10000;

export function showMessage(text, kind = "error") {
  const box = byId("messages");
  const close = el("button", { type: "button", "aria-label": "Dismiss message" }, "×");
  const message = el(
    "div",
    { class: `message ${kind}`, dataset: { testid: "message", kind } },
    el("span", {}, el("span", { class: "kind" }, kind === "error" ? "Error:" : "Note:"), text),
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

/** Run an action from a button or form; any failure becomes a visible message. */
export async function guarded(action, button = null) {
  if (button) button.disabled = true;
  try {
    await action();
  } catch (error) {
    reportError(error);
  } finally {
    if (button) button.disabled = false;
    refreshControls();
  }
}

export function reportError(error) {
  if (error instanceof ApiError && error.status === 401 && state.token) {
    logout("Your sign-in is no longer valid; please log in again.");
    return;
  }
  showMessage(error instanceof Error ? error.message : String(error));
}

window.addEventListener("unhandledrejection", (event) => {
  showMessage(`Unexpected problem: ${event.reason && event.reason.message || event.reason}`);
});
window.addEventListener("error", (event) => {
  showMessage(`Unexpected problem: ${event.message}`);
});
