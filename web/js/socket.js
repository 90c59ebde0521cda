// The class WebSocket with automatic reconnection (exponential backoff with jitter).
// Frames are {"event": NAME, "data": {...}} both ways (docs/protocol.md).

const MIN_DELAY_MS = 500;
const MAX_DELAY_MS = 10000;
export const UNAUTHORIZED = "Unauthorized or invalid token";

export class ClassSocket {
  /**
   * @param {object} options
   * @param {() => string} options.url         the ws:// URL to (re)open, built afresh each time
   * @param {(event: string, data: object) => void} options.onEvent
   * @param {(state: string, detail: string) => void} options.onStatus
   *        state is "connecting", "open", "reconnecting" or "closed"
   * @param {(reconnected: boolean) => void} options.onOpen
   * @param {(message: string) => void} options.onFatal   the server refused us for good
   */
  constructor({ url, onEvent, onStatus, onOpen, onFatal }) {
    this.url = url;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.onOpen = onOpen;
    this.onFatal = onFatal;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    this.everOpened = false;
    this.fatal = false;
    this.onOnline = () => { if (this.timer !== null) this.reconnectNow(); };
    window.addEventListener("online", this.onOnline);
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    if (this.stopped) return;
    this.onStatus(this.everOpened ? "reconnecting" : "connecting",
                  this.everOpened ? "reconnecting…" : "connecting…");
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.addEventListener("open", () => {
      if (ws !== this.ws) return;
      const reconnected = this.everOpened;
      this.everOpened = true;
      this.attempt = 0;
      this.onStatus("open", "connected");
      this.onOpen(reconnected);
    });
    ws.addEventListener("message", (message) => {
      if (ws !== this.ws) return;
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        this.onEvent("ERROR", { message: "The server sent a frame that is not JSON" });
        return;
      }
      if (!frame || typeof frame.event !== "string") return;
      const data = frame.data && typeof frame.data === "object" ? frame.data : {};
      if (frame.event === "ERROR" && data.message === UNAUTHORIZED) {
        this.fatal = true;
        this.onFatal(data.message);
        return;
      }
      this.onEvent(frame.event, data);
    });
    ws.addEventListener("close", (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      if (this.stopped || this.fatal) {
        this.onStatus("closed", "not connected");
        return;
      }
      this.scheduleReconnect(event.code);
    });
    // "error" is always followed by "close", which does the work.
  }

  scheduleReconnect(code) {
    const base = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** this.attempt);
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.attempt += 1;
    const seconds = (delay / 1000).toFixed(1);
    this.onStatus("reconnecting",
                  `connection lost${code ? ` (code ${code})` : ""}; reconnecting in ${seconds} s ` +
                  `(attempt ${this.attempt})`);
    this.timer = window.setTimeout(() => {
      this.timer = null;
      this.connect();
    }, delay);
  }

  reconnectNow() {
    if (this.timer !== null) window.clearTimeout(this.timer);
    this.timer = null;
    this.connect();
  }

  /** Send one event; false when the socket is not open (the caller decides what that means). */
  send(event, data = {}) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify({ event, data }));
    return true;
  }

  /**
   * Drop the connection as if the network did: the reconnect path takes over.
   * `backoff` raises the attempt count, so repeated restarts wait longer.
   */
  drop(backoff = 0) {
    this.attempt = Math.max(this.attempt, backoff);
    if (this.ws) this.ws.close(4000, "client restarts the connection");
    else if (this.timer === null && !this.stopped) this.scheduleReconnect(0);
  }

  /** Close for good (leaving the class, logging out): no reconnect. */
  close() {
    this.stopped = true;
    window.removeEventListener("online", this.onOnline);
    if (this.timer !== null) window.clearTimeout(this.timer);
    this.timer = null;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, "bye");
    }
    this.onStatus("closed", "not connected");
  }
}
