// Signing up, in and out: the forms, the "signed in as" bar, and entering the app.
import { byId, show } from "./dom.js";
import { api, CLASS_KEY, isTeacher, state, TOKEN_KEY } from "./state.js";
import { clearMessages, guarded, showMessage } from "./messages.js";
import { closeClass, loadClasses, selectClass } from "./classes.js";
import { connectSocket } from "./connection.js";

export async function enterApp() {
  state.me = await api.me();
  byId("whoami-name").textContent = state.me.name;
  byId("whoami-role").textContent = state.me.role;
  show(byId("whoami"));
  show(byId("auth"), false);
  show(byId("app"));
  for (const element of document.querySelectorAll(".teacher-only")) show(element, isTeacher());
  await loadClasses();
  const remembered = sessionStorage.getItem(CLASS_KEY);
  if (remembered && state.classes.some((cls) => cls._id === remembered)) {
    await selectClass(remembered);
  } else {
    connectSocket(); // no class open: the socket still hears pushes about this user
  }
}

async function login(email, password) {
  const { token } = await api.login(email, password);
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  clearMessages();
  await enterApp();
}

export function logout(reason = null) {
  closeClass(); // and its socket
  state.token = null;
  state.me = null;
  state.classes = null;
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(CLASS_KEY);
  show(byId("app"), false);
  show(byId("whoami"), false);
  byId("whoami-name").textContent = "";
  byId("whoami-role").textContent = "";
  show(byId("auth"));
  byId("class-list").replaceChildren();
  if (reason) showMessage(reason);
}

byId("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  guarded(() => login(form.email.value.trim(), form.password.value),
          form.querySelector("button"));
});

byId("signup-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  guarded(async () => {
    const email = form.email.value.trim();
    await api.signup(form.name.value.trim(), email, form.password.value, form.role.value);
    await login(email, form.password.value);
    showMessage(`Welcome, ${state.me.name}! Your ${state.me.role} account is ready.`, "info");
  }, form.querySelector("button"));
});

byId("logout").addEventListener("click", () => logout());
