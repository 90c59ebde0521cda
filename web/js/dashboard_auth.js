// Signing in on the dashboard: the classroom page's token in the same sessionStorage key,
// so a teacher signed in there (in this tab) is signed in here, and the other way round.
import { byId, show } from "./dom.js";
import { CLASS_KEY, TOKEN_KEY } from "./state.js";
import { clearMessages, errorText, showMessage } from "./dashboard_messages.js";

export const currentToken = () => sessionStorage.getItem(TOKEN_KEY);

/** Show the sign-in form (and `reason`, if any) instead of the dashboard. */
export function signedOut(reason = null) {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(CLASS_KEY);
  show(byId("app"), false);
  show(byId("whoami"), false);
  byId("whoami-name").textContent = "";
  show(byId("auth"));
  if (reason) showMessage(reason);
}

/** Show who is signed in, with the dashboard instead of the form. */
export function signedIn(me) {
  byId("whoami-name").textContent = `${me.name} (${me.role})`;
  show(byId("whoami"));
  show(byId("auth"), false);
}

/** Wire the form and the Log out button: `enter()` opens the dashboard once signed in,
 *  `leave()` closes it on Log out. */
export function wireSignIn(dashboardApi, enter, leave) {
  byId("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const { token } = await dashboardApi.login(form.email.value.trim(), form.password.value);
      sessionStorage.setItem(TOKEN_KEY, token);
      clearMessages();
      await enter();
    } catch (error) {
      showMessage(errorText(error));
    } finally {
      button.disabled = false;
    }
  });
  byId("logout").addEventListener("click", () => {
    leave();
    signedOut();
  });
}
