// The page's one class socket (web/js/socket.js does the reconnecting): opened for the
// selected class, or without a class while none is open so that pushes about this user
// still arrive; and the dispatch of every server event to the module that shows it.
import { byId } from "./dom.js";
import { ClassSocket } from "./socket.js";
import { api, isTeacher, state } from "./state.js";
import { guarded, showMessage } from "./messages.js";
import { logout } from "./account.js";
import { enrolledInClass, loadClasses } from "./classes.js";
import { applyRoomState, renderSessionStatus, sessionEnded, summaryText } from "./session.js";
import {
  leaveRoomLocally, mediaStateRefused, restartMedia, roomJoined, sendJoin, setSelfConnection,
} from "./room.js";
import {
  activeSpeaker, mediaState, peerJoined, peerLeft, setTileConnection,
} from "./tiles.js";
import {
  attendanceMarked, loadEnrolChoices, renderRoster, requestRoster, roster, studentSignedUp,
} from "./roster.js";
import {
  myMarkBroadcast, myStatusPushed, requestMyAttendance, setMyStatus,
} from "./my_attendance.js";
import { recordingChanged } from "./recording.js";
import { screenShareChanged } from "./screenshare.js";
import { layersChanged } from "./subscription.js";
import { chatDeleted, chatReceived, chatRefused } from "./chat.js";
import { handChanged, handLeft } from "./hands.js";
import { pollCounts, pollRefused, pollResult, pollStarted, pollVoted } from "./polls.js";
import { mediaStateSeen, moderated, moderation } from "./moderation.js";

// Requests the page sends on its own to stay fresh: when one fails, the next poll or DONE
// tells the user what changed, so the failure goes to the console, not to a message.
// SUBSCRIPTION follows the layout; the user can do nothing about a refused one.
const BACKGROUND_REQUESTS = new Set(["ROSTER", "MY_ATTENDANCE", "SUBSCRIPTION"]);
const MEDIA_FAILED = /media connection failed/i;
// A refusal that asks to be retried (overload, a cluster whose room's server is moving):
// the page joins again by itself, backing off, as it does after a dropped socket.
const TRY_AGAIN = /try again shortly/i;
const JOIN_RETRY_MS = [1000, 2000, 4000, 8000];

function socketUrl(classId) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const params = new URLSearchParams({ token: state.token });
  if (classId) params.set("classId", classId);
  return `${scheme}://${location.host}/ws?${params}`;
}

/** (Re)open the socket for the selected class, or unbound when no class is open. */
export function connectSocket() {
  disconnectSocket();
  const classId = state.cls ? state.cls._id : null;
  const socket = new ClassSocket({
    url: () => socketUrl(classId),
    onEvent: (event, data) => {
      if (state.socket === socket) handleEvent(event, data);
    },
    onStatus: (socketState, detail) => {
      const status = byId("socket-status");
      status.textContent = detail;
      status.dataset.state = socketState;
      if (socketState === "reconnecting" && (state.inRoom || state.joinPending)) {
        // The server drops our room membership with the socket: rejoin once it is back.
        leaveRoomLocally({ keepTiles: true });
        setSelfConnection("reconnecting");
        for (const participant of state.participants.values()) {
          setTileConnection(participant, "reconnecting");
        }
      }
    },
    onOpen: (reconnected) => guarded(() => socketOpened(socket, reconnected)),
    onFatal: (message) => logout(`${message}. Please log in again.`),
  });
  state.socket = socket;
  socket.connect();
}

export function disconnectSocket() {
  if (state.socket) state.socket.close();
  state.socket = null;
}

async function socketOpened(socket, reconnected) {
  if (state.cls) {
    if (reconnected) {
      const wanted = state.wantInRoom;
      applyRoomState(await api.room(state.cls._id));
      if (!state.session.isActive && wanted) {
        state.wantInRoom = false;
        leaveRoomLocally();
        showMessage("The session ended while you were disconnected.", "info");
      }
    }
    if (state.wantInRoom && state.session.isActive) {
      sendJoin();
    } else if (!isTeacher() && state.session.isActive) {
      requestMyAttendance();
    }
    requestRoster();
  }
  // Pushes sent while this socket was not open yet are lost: read what they would have told.
  if (state.socket !== socket) return;
  await loadClasses();
  if (state.cls && isTeacher()) await loadEnrolChoices();
}

export function send(event, data = {}) {
  if (state.socket && state.socket.send(event, data)) return true;
  showMessage(`Not connected to the server (could not send ${event}); it will retry shortly.`);
  return false;
}

/** Events about this user: they arrive whether a class is open or not. */
const USER_EVENTS = {
  ENROLLED_IN_CLASS: enrolledInClass,
  STUDENT_SIGNED_UP: studentSignedUp,
  MY_ATTENDANCE_UPDATED: myStatusPushed,
  ERROR: serverError,
};

function handleEvent(event, data) {
  if (Object.hasOwn(USER_EVENTS, event)) {
    USER_EVENTS[event](data);
    return;
  }
  // A socket opened without a class hears whichever class of ours is live; none is open here.
  if (!state.cls) return;
  switch (event) {
    case "ROOM_JOINED": roomJoined(data); break;
    case "PEER_JOINED": peerJoined(data); renderRoster(); break;
    case "PEER_LEFT": peerLeft(data); handLeft(data); renderRoster(); break;
    case "MEDIA_STATE": mediaState(data); mediaStateSeen(data); break;
    case "ACTIVE_SPEAKER": activeSpeaker(data); break;
    case "ROSTER": roster(data); break;
    case "RECORDING": recordingChanged(data); break;
    case "SCREEN_SHARE": screenShareChanged(data); break;
    case "LAYERS": layersChanged(data); break;
    case "CHAT": chatReceived(data); break;
    case "CHAT_DELETED": chatDeleted(data); break;
    case "HAND": handChanged(data); break;
    case "POLL_STARTED": pollStarted(data); break;
    case "POLL_VOTED": pollVoted(data); break;
    case "POLL_COUNTS": pollCounts(data); break;
    case "POLL_RESULT": pollResult(data); break;
    case "MODERATED": moderated(data); break;
    case "MODERATION": moderation(data); break;
    case "WEBRTC_OFFER": if (state.media) state.media.handleOffer(data); break;
    case "WEBRTC_ANSWER": if (state.media) state.media.handleAnswer(data); break;
    case "WEBRTC_ICE_CANDIDATE": if (state.media) state.media.handleCandidate(data); break;
    case "ATTENDANCE_MARKED":
      if (isTeacher()) attendanceMarked(data);
      else myMarkBroadcast(data);
      break;
    case "TODAY_SUMMARY": byId("summary").textContent = summaryText(data, "Today so far"); break;
    case "MY_ATTENDANCE": setMyStatus(data.status, { reply: true }); break;
    case "DONE": sessionEnded(data); break;
    default: break; // newer server events this page does not know yet
  }
}

function retryJoin(message) {
  state.joinPending = false;
  const wait = JOIN_RETRY_MS[Math.min(state.joinRetries, JOIN_RETRY_MS.length - 1)];
  state.joinRetries += 1;
  setSelfConnection("reconnecting");
  showMessage(`Joining again in ${wait / 1000} s: ${message}`, "info");
  if (state.joinRetryTimer !== null) clearTimeout(state.joinRetryTimer);
  state.joinRetryTimer = setTimeout(() => {
    state.joinRetryTimer = null;
    if (state.wantInRoom && !state.inRoom && state.session.isActive) sendJoin();
  }, wait);
}

/** ERROR {message, event}: `event` names the request it answers (null when unsolicited). */
function serverError(data) {
  const message = String(data.message || "The server reported an error");
  const answering = typeof data.event === "string" ? data.event : null;
  if (BACKGROUND_REQUESTS.has(answering)) {
    console.info(`${answering} refresh failed: ${message}`);
    return;
  }
  if (answering === "JOIN_ROOM" && state.joinPending && TRY_AGAIN.test(message)) {
    retryJoin(message);
    return;
  }
  if (answering === "JOIN_ROOM" && state.joinPending) {
    state.joinPending = false;
    state.wantInRoom = false;
    leaveRoomLocally();
    showMessage(`Could not join the room: ${message}`);
    renderSessionStatus();
    return;
  }
  if (answering === "CHAT" || answering === "CHAT_DELETE") {
    // A refused message stays in the input to send again; the reason shows as usual.
    chatRefused(answering);
    showMessage(answering === "CHAT" ? `Message not sent: ${message}` : message);
    return;
  }
  if (typeof answering === "string" && answering.startsWith("POLL_")) pollRefused(answering);
  if (answering === "MEDIA_STATE") mediaStateRefused(); // my microphone stays off
  if (answering === "WEBRTC_OFFER" && state.media) {
    // Our publish offer was refused: it is rolled back (a refused screen share stops).
    state.media.publishRefused(message);
  }
  if (answering === null && state.inRoom && MEDIA_FAILED.test(message)) {
    // The server gave up on our media and removed us from the room: join again.
    restartMedia(message.replace(/[.;].*$/, "").toLowerCase());
    return;
  }
  showMessage(message);
}
