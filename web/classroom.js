// The classroom page: sign in, pick a class, take part in its live session.
// Plain ES modules, no build step; each module under js/ has one job. The WebSocket events
// it sends and handles are described in docs/protocol.md.
import { ApiError } from "./js/api.js";
import { attr } from "./js/dom.js";
import { state } from "./js/state.js";
import { enterApp, logout } from "./js/account.js";
import { reportError } from "./js/messages.js";
import "./js/classes.js";
import "./js/session.js";
import "./js/room.js";
import "./js/roster.js";
import "./js/recording.js";
import "./js/chat.js";
import "./js/hands.js";
import "./js/polls.js";
import "./js/moderation.js";
import { setPageSize } from "./js/layout.js";
import * as testHooks from "./js/testhooks.js";

// Only with ?testHooks=1: what the browser tests read and do.
testHooks.expose({
  state,
  dropConnection: () => state.socket && state.socket.drop(),
  selector: (userId) => `[data-testid=remote-tile][data-user-id="${attr(userId)}"]`,
  setPageSize,
  sentRtp: () => testHooks.sentRtp(state.media, state.publisher),
  receivedVideo: (userId, source = "camera") => {
    const participant = state.participants.get(userId);
    const track = source === "screen"
      ? state.screenTracks.get(userId)
      : participant && participant.tracks.camera;
    return testHooks.receivedVideo(state.media, track);
  },
  // The inbound RTP of `userId`'s microphone as received here (null: no such track).
  receivedAudio: (userId) => {
    const participant = state.participants.get(userId);
    return testHooks.receivedRtp(state.media, participant && participant.tracks.microphone);
  },
});

if (state.token) {
  enterApp().catch((error) => {
    const expired = error instanceof ApiError && error.status === 401;
    logout(expired ? "Your sign-in has expired; please log in again." : null);
    if (!expired) reportError(error);
  });
}
