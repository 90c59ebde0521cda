// Tiny DOM helpers: no framework, nothing clever.

/** The element with this id (throws early if the page and the script disagree). */
export function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`page has no #${id}`);
  return element;
}

/**
 * Create an element: el("button", {type: "button", dataset: {testid: "x"}}, "text", child).
 * Attributes named on* are not supported on purpose: wire events with addEventListener.
 */
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "dataset") Object.assign(element.dataset, value);
    else if (name === "text") element.textContent = value;
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Show or hide an element (the `hidden` attribute; CSS makes it win). */
export function show(element, visible = true) {
  element.hidden = !visible;
}

/** CSS.escape for attribute selectors built from server-given ids. */
export function attr(value) {
  return CSS.escape(String(value));
}
