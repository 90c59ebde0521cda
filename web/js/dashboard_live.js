// Keeping the dashboard live: load the session again every few seconds while it runs, one
// load at a time, and stop for good once it has ended. Starting again (another session on
// show) cancels the earlier round, and its answer, if one is still on the way, is dropped.

export const REFRESH_MS = 3000;

export class LiveRefresh {
  constructor(intervalMs = REFRESH_MS) {
    this.intervalMs = intervalMs;
    this.round = 0;
    this.timer = null;
  }

  /**
   * Run `load(isCurrent)` now and again every `intervalMs` for as long as it resolves to
   * true (the session is still active). `isCurrent()` says whether this round is still the
   * one wanted: check it before showing what was loaded. A failed load goes to
   * `onError(error)`; the round goes on if that returns true.
   */
  start(load, onError) {
    this.stop();
    const round = this.round;
    const isCurrent = () => round === this.round;
    const tick = async () => {
      this.timer = null;
      let again;
      try {
        again = await load(isCurrent);
      } catch (error) {
        again = isCurrent() && onError(error);
      }
      if (again && isCurrent()) this.timer = setTimeout(tick, this.intervalMs);
    };
    return tick();
  }

  stop() {
    this.round += 1;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  get running() {
    return this.timer !== null;
  }
}
