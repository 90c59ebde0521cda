// REST client for the server's JSON envelope: {"success": true, "data"} or
// {"success": false, "error"}. Every failure becomes an ApiError with a readable message.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

export class Api {
  /** @param {() => string | null} getToken */
  constructor(getToken) {
    this.getToken = getToken;
  }

  async call(method, path, body) {
    const headers = {};
    const token = this.getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiError(`Cannot reach the server (${error.message})`, 0);
    }
    let envelope = null;
    try {
      envelope = await response.json();
    } catch {
      throw new ApiError(`The server answered ${response.status} without a readable body`,
                         response.status);
    }
    if (!envelope || envelope.success !== true) {
      const message = (envelope && envelope.error) || `Request failed (${response.status})`;
      throw new ApiError(String(message), response.status);
    }
    return envelope.data;
  }

  signup(name, email, password, role) {
    return this.call("POST", "/auth/signup", { name, email, password, role });
  }
  login(email, password) {
    return this.call("POST", "/auth/login", { email, password });
  }
  me() { return this.call("GET", "/auth/me"); }
  classes() { return this.call("GET", "/classes"); }
  createClass(className) { return this.call("POST", "/class", { className }); }
  getClass(classId) { return this.call("GET", `/class/${encodeURIComponent(classId)}`); }
  room(classId) { return this.call("GET", `/class/${encodeURIComponent(classId)}/room`); }
  students() { return this.call("GET", "/students"); }
  enrol(classId, studentId) {
    return this.call("POST", `/class/${encodeURIComponent(classId)}/add-student`, { studentId });
  }
  startSession(classId) { return this.call("POST", "/attendance/start", { classId }); }
  endSession(classId) { return this.call("POST", "/attendance/end", { classId }); }
  myAttendance(classId) {
    return this.call("GET", `/class/${encodeURIComponent(classId)}/my-attendance`);
  }
  sessionReport(classId, sessionId) {
    return this.call("GET",
      `/class/${encodeURIComponent(classId)}/sessions/${encodeURIComponent(sessionId)}`);
  }
  myHistory(classId) {
    return this.call("GET", `/class/${encodeURIComponent(classId)}/my-history`);
  }
}
