// The page's shared state: who is signed in, the selected class and its session, the room.
// Every module reads and writes this one object; nothing else is global.
import { Api } from "./api.js";

export const TOKEN_KEY = "classroom.token";     // sessionStorage
export const CLASS_KEY = "classroom.classId";   // sessionStorage: reopened after a reload
export const NOT_YET_UPDATED = "not yet updated";

export const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  me: null,                 // {_id, name, email, role}
  classes: null,            // null until loaded
  cls: null,                // the selected class, with `students`
  session: { isActive: false, sessionId: null, ended: false },
  endedSessionId: null,     // DONE shown for this session already
  socket: null,             // one ClassSocket: for the selected class, or unbound without one
  pollTimer: null,
  pollCount: 0,
  wantInRoom: false,        // the user asked to be in the room (rejoin after drops)
  joinPending: false,
  inRoom: false,
  recording: false,         // the room is being recorded (RECORDING / ROOM_JOINED)
  media: null,              // RoomMedia: the two peer connections (web/js/media.js)
  publisher: null,          // Publisher: what the publish connection sends (web/js/publisher.js)
  mediaStates: { publish: "new", subscribe: "new" },
  disconnectTimer: null,
  mediaRestarts: 0,         // consecutive media failures (more backoff each time)
  joinRetries: 0,           // JOIN_ROOMs refused in a row with "try again shortly"
  joinRetryTimer: null,
  localStream: null,
  localStreamPromise: null,
  camOn: true,
  micOn: true,
  participants: new Map(),  // userId -> {userId, name, role, audio, video, tracks, tile}
  localScreen: null,        // my screen capture track while I share
  screenShare: null,        // userId of whoever shares a screen in the room (SCREEN_SHARE)
  screenTracks: new Map(),  // userId -> their received screen track
  layers: new Map(),        // userId -> the last LAYERS entry about them
  pageSize: 8,              // at most this many student tiles per grid page
  gridPage: 0,
  marks: new Map(),         // studentId -> status (teacher's view of this session)
  presence: new Map(),      // userId -> true while in the room (from room events / ROSTER)
  myStatus: { sessionId: null, status: null }, // a student's own status in this session
  speaker: null,
  hands: new Map(),         // userId -> when raised, in the order the hands went up (HAND)
};

export const api = new Api(() => state.token);

export const isTeacher = () => state.me !== null && state.me.role === "teacher";
