// The API as the dashboard uses it: bearer token (kept for this tab only), JSON calls that
// turn errors into problems, and live event streams opened with single-use stream tickets.

const TOKEN_KEY = "cerebros.token";

// The dashboard is served at <api>/ui/: the API is the parent of this page's folder.
const API_ROOT = new URL("../", window.location.href);

export const EVENT_NAMES = [
  "cerebros.nas.run.started",
  "cerebros.nas.run.completed",
  "cerebros.nas.run.failed",
  "cerebros.nas.run.cancelled",
  "cerebros.nas.step.started",
  "cerebros.nas.step.succeeded",
  "cerebros.nas.step.failed",
  "cerebros.nas.step.undone",
  "cerebros.nas.trial.started",
  "cerebros.nas.trial.epoch",
  "cerebros.nas.trial.completed",
  "cerebros.nas.trial.failed",
  "cerebros.nas.trial.pruned",
];
const END_EVENT = "stream.end";
const RECONNECT_EVENT = "stream.reconnect";

export const session = {
  authRequired: true,
  token: window.sessionStorage.getItem(TOKEN_KEY),
  onUnauthorized: () => {},

  signIn(token) {
    this.token = token;
    window.sessionStorage.setItem(TOKEN_KEY, token);
  },
  signOut() {
    this.token = null;
    window.sessionStorage.removeItem(TOKEN_KEY);
  },
  get signedIn() {
    return !this.authRequired || Boolean(this.token);
  },
};

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export function apiUrl(path, params) {
  const url = new URL(path.replace(/^\//, ""), API_ROOT);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  return url;
}

async function problemOf(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && typeof body === "object") return { status: response.status, ...body };
  } catch {
    // not JSON: a proxy's page, uvicorn's plain-text 400
  }
  return { status: response.status, title: response.statusText || "Error", detail: text.slice(0, 500) };
}

/**
 * Call the API. `body` is sent as JSON (a string is sent as is: the JSON editor's text).
 * Resolves to the parsed body (or the Response with `raw`); rejects with ApiError.
 */
export async function call(method, path, { params, body, headers, raw, signal } = {}) {
  const sent = { Accept: "application/json, application/problem+json", ...(headers || {}) };
  if (session.authRequired && session.token) sent.Authorization = `Bearer ${session.token}`;
  let payload;
  if (body !== undefined) {
    sent["Content-Type"] = "application/json";
    payload = typeof body === "string" ? body : JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(apiUrl(path, params), { method, headers: sent, body: payload, signal, cache: "no-store" });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, { title: "API unreachable", detail: `cannot reach the API (${err.message})` });
  }
  if (!response.ok) {
    const problem = await problemOf(response);
    if (response.status === 401 && session.authRequired) session.onUnauthorized(problem);
    throw new ApiError(response.status, problem);
  }
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

export const get = (path, options) => call("GET", path, options);
export const post = (path, options) => call("POST", path, options);

/**
 * One live SSE stream. EventSource sends no headers, so each connection is opened with a
 * fresh single-use ticket (POST /events/tickets) instead of the token. It resumes after
 * the last event it received (`after=`), both when the server asks (`stream.reconnect`)
 * and when the connection drops; `stream.end` closes it for good.
 */
export class LiveStream {
  constructor(path, { runId, pattern, onEvent, onEnd, onStatus } = {}) {
    this.path = path;
    this.runId = runId;
    this.pattern = pattern;
    this.onEvent = onEvent || (() => {});
    this.onEnd = onEnd || (() => {});
    this.onStatus = onStatus || (() => {});
    this.lastId = null;
    this.seen = new Set();
    this.source = null;
    this.closed = false;
    this.failures = 0;
    this.timer = null;
  }

  start() {
    this.open();
    return this;
  }

  async open() {
    if (this.closed) return;
    this.onStatus("connecting");
    const params = { pattern: this.pattern, after: this.lastId };
    try {
      if (session.authRequired) {
        const ticket = await post("/events/tickets", { body: this.runId ? { run_id: this.runId } : {} });
        params.ticket = ticket.ticket;
      }
    } catch (err) {
      if (err instanceof ApiError && (err.status === 401 || err.status === 404)) {
        this.close();
        this.onStatus("closed", err.problem);
        return;
      }
      this.retry();
      return;
    }
    if (this.closed) return;
    const source = new EventSource(apiUrl(this.path, params));
    this.source = source;
    source.onopen = () => {
      this.failures = 0;
      this.onStatus("live");
    };
    // The ticket is used up: the browser's own reconnection would be refused, so every
    // drop is handled here, with a new ticket and `after=` the last event received.
    source.onerror = () => {
      source.close();
      if (this.source === source) this.retry();
    };
    for (const name of EVENT_NAMES) source.addEventListener(name, (e) => this.deliver(e));
    source.addEventListener(END_EVENT, (e) => {
      this.close();
      let reason = "complete";
      try {
        reason = JSON.parse(e.data).reason || reason;
      } catch {
        // keep the default
      }
      if (reason === "token_revoked") {
        this.onStatus("closed");
        session.onUnauthorized({ status: 401, title: "Token revoked", detail: "the token was revoked while a stream was open; sign in with another" });
        return;
      }
      this.onStatus("ended");
      this.onEnd();
    });
    source.addEventListener(RECONNECT_EVENT, (e) => {
      source.close();
      let wait = 2000;
      try {
        wait = Number(JSON.parse(e.data).retry_ms) || wait;
      } catch {
        // keep the default
      }
      this.retry(wait);
    });
  }

  deliver(message) {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    // A live-only notification (epoch progress) has no id: the browser then repeats the
    // last event's id in lastEventId, which must not make it look like a duplicate.
    const id = event.live ? "" : message.lastEventId;
    if (id) {
      if (this.seen.has(id)) return;
      this.seen.add(id);
      // A duplicate can only come right after a resume: the recent ids are enough.
      if (this.seen.size > 10000) this.seen.delete(this.seen.values().next().value);
      this.lastId = id;
    }
    this.onEvent(event);
  }

  retry(wait) {
    if (this.closed) return;
    this.source = null;
    this.failures += 1;
    this.onStatus("reconnecting");
    const delay = wait ?? Math.min(15000, 500 * 2 ** Math.min(this.failures, 5));
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), delay);
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.source) this.source.close();
    this.source = null;
  }
}
