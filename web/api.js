/* api.js: what the dashboard and the game share - the API token, requests, small helpers.
 *
 * The token (optional) is kept in localStorage and sent as `Authorization: Bearer <token>` with
 * every request, so that the pages keep working once elbod requires API keys. Everything is
 * fetched from the page's own origin: nothing comes from anywhere else.
 */
"use strict";

const Elbod = (() => {
  const TOKEN_KEY = "elbod.token";

  function token() {
    try {
      return localStorage.getItem(TOKEN_KEY) || "";
    } catch (e) {
      return "";
    }
  }

  function setToken(t) {
    try {
      if (t) localStorage.setItem(TOKEN_KEY, t);
      else localStorage.removeItem(TOKEN_KEY);
    } catch (e) {
      /* storage disabled: the token lasts for this page only */
    }
  }

  /* An error from the API, with its HTTP status and the error code of the body. */
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message || code || "HTTP " + status);
      this.status = status;
      this.code = code || "";
    }
  }

  /* One request. body: an object sent as JSON (or undefined). Resolves to the parsed JSON (or
   * the text for non-JSON answers); rejects with ApiError. */
  async function request(method, path, body, opts) {
    const headers = {};
    const t = token();
    if (t) headers["Authorization"] = "Bearer " + t;
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (opts && opts.signal) init.signal = opts.signal;
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "unreachable", "elbod does not answer (" + e.message + ")");
    }
    const ct = resp.headers.get("Content-Type") || "";
    const data = ct.startsWith("application/json") ? await resp.json().catch(() => null)
                                                    : await resp.text();
    if (!resp.ok) {
      const err = data && data.error ? data.error : {};
      throw new ApiError(resp.status, err.code, err.message || resp.status + " " + resp.statusText);
    }
    return data;
  }

  const enc = encodeURIComponent;
  const api = {
    version: () => request("GET", "/v1/version"),
    agents: () => request("GET", "/v1/agents"),
    agent: (name) => request("GET", "/v1/agents/" + enc(name)),
    createAgent: (spec) => request("POST", "/v1/agents", spec),
    deleteAgent: (name) => request("DELETE", "/v1/agents/" + enc(name)),
    training: (name) => request("GET", "/v1/agents/" + enc(name) + "/training"),
    setTraining: (name, action) =>
      request("POST", "/v1/agents/" + enc(name) + "/training", { action }),
    plan: (name, body) => request("POST", "/v1/agents/" + enc(name) + "/plan", body),
    openSession: (name, body) => request("POST", "/v1/agents/" + enc(name) + "/sessions", body),
    sessionAct: (name, sid, body) =>
      request("POST", "/v1/agents/" + enc(name) + "/sessions/" + enc(sid) + "/act", body),
    closeSession: (name, sid) =>
      request("DELETE", "/v1/agents/" + enc(name) + "/sessions/" + enc(sid)),
    episodes: (name) => request("GET", "/v1/agents/" + enc(name) + "/episodes"),
    reportEpisode: (name, ret, steps) =>
      request("POST", "/v1/agents/" + enc(name) + "/episodes/report", { return: ret, steps }),
    metrics: () => request("GET", "/metrics"),
  };

  /* The session a game page plays with, per agent, so that the dashboard can plan from it. */
  const sessionKey = (agent) => "elbod.session." + agent;
  function gameSession(agent) {
    try {
      return localStorage.getItem(sessionKey(agent)) || "";
    } catch (e) {
      return "";
    }
  }
  function setGameSession(agent, sid) {
    try {
      if (sid) localStorage.setItem(sessionKey(agent), sid);
      else localStorage.removeItem(sessionKey(agent));
    } catch (e) {
      /* ignored */
    }
  }

  /* Wires a token <input> and its "save" button: the field shows whether a token is set. */
  function mountTokenField(input, button, status) {
    input.value = token();
    const show = () => {
      if (status) status.textContent = token() ? "token set" : "no token";
    };
    const save = () => {
      setToken(input.value.trim());
      show();
    };
    button.addEventListener("click", save);
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") save();
    });
    show();
  }

  /* Parses the Prometheus text of /metrics into [{name, labels: {...}, value}]. */
  function parseMetrics(text) {
    const out = [];
    for (const line of text.split("\n")) {
      if (!line || line[0] === "#") continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
      if (!m) continue;
      const labels = {};
      if (m[3]) {
        const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
        let l;
        while ((l = re.exec(m[3]))) labels[l[1]] = l[2].replace(/\\(.)/g, "$1");
      }
      out.push({ name: m[1], labels, value: parseFloat(m[4]) });
    }
    return out;
  }

  /* The q-quantile of a histogram given as sorted [le, count] pairs of counts (not cumulative)
   * whose last le is Infinity, interpolating linearly inside a bucket as Prometheus'
   * histogram_quantile does. NaN when the histogram is empty. */
  function histogramQuantile(q, buckets) {
    const total = buckets.reduce((s, b) => s + b[1], 0);
    if (!(total > 0)) return NaN;
    const rank = q * total;
    let cum = 0;
    for (let i = 0; i < buckets.length; i++) {
      const [le, c] = buckets[i];
      if (cum + c >= rank && c > 0) {
        const lo = i > 0 ? buckets[i - 1][0] : 0;
        if (!isFinite(le)) return lo; /* above the largest bound: report that bound */
        return lo + (le - lo) * ((rank - cum) / c);
      }
      cum += c;
    }
    return buckets.length > 1 ? buckets[buckets.length - 2][0] : NaN;
  }

  function fmt(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    if (typeof v !== "number") return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
    return v.toFixed(digits === undefined ? (a >= 100 ? 0 : a >= 10 ? 1 : 3) : digits);
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  return {
    ApiError,
    api,
    request,
    token,
    setToken,
    mountTokenField,
    gameSession,
    setGameSession,
    parseMetrics,
    histogramQuantile,
    fmt,
    sleep,
  };
})();
