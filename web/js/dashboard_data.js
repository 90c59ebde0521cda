// The REST calls of the participation dashboard: the classroom page's client (api.js, the
// same bearer token) plus the report routes (docs/api.md, api/routes/report_routes.py).
import { Api, ApiError } from "./api.js";

const enc = encodeURIComponent;

function sessionPath(classId, sessionId) {
  return `/class/${enc(classId)}/sessions/${enc(sessionId)}`;
}

export class DashboardApi extends Api {
  /** The class's sessions, newest first: [{sessionId, startedAt, endedAt, isActive, summary}]. */
  sessions(classId) {
    return this.call("GET", `/class/${enc(classId)}/sessions`);
  }

  /** One session's participation: the students' rows, the polls, the score formula. */
  participation(classId, sessionId) {
    return this.call("GET", `${sessionPath(classId, sessionId)}/participation`);
  }

  /** The participation CSV as {blob, filename}. It is not the JSON envelope, and it needs
   *  the Authorization header, so it is fetched here rather than linked to. */
  async participationCsv(classId, sessionId) {
    const headers = {};
    const token = this.getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(`${sessionPath(classId, sessionId)}/participation.csv`, { headers });
    } catch (error) {
      throw new ApiError(`Cannot reach the server (${error.message})`, 0);
    }
    if (!response.ok) {
      let message = `CSV export failed (${response.status})`;
      try {
        const envelope = await response.json();
        if (envelope && envelope.error) message = String(envelope.error);
      } catch {
        // keep the status line
      }
      throw new ApiError(message, response.status);
    }
    const disposition = response.headers.get("Content-Disposition") || "";
    const named = /filename="([^"]+)"/.exec(disposition);
    const filename = named ? named[1] : `participation-${classId}-${sessionId}.csv`;
    return { blob: await response.blob(), filename };
  }
}
