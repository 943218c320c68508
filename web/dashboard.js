/* dashboard.js: the agents of this elbod and live plots of the selected one.
 *
 * Polls GET /v1/agents (every 3 s), and for the selected agent GET .../training and /metrics
 * (every second) and GET .../episodes (every 2 s). elbod keeps only the latest ELBO terms, so
 * the curves are the history this page has seen since it was opened (or the agent selected).
 * Plans come from POST .../plan, from a session (e.g. the cart-pole game's) or an observation.
 */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const { api, fmt } = Elbod;
  const TERMS = ["elbo", "reward", "info_gain", "state_kl", "action_kl"];
  const ACT_ROUTES = ["/v1/agents/{name}/act", "/v1/agents/{name}/sessions/{id}/act"];
  const KEEP = 900; /* points kept per live series */
  const LATENCY_WINDOW_S = 5; /* act latency quantiles over about the last 5 s */

  const charts = {};
  for (const t of TERMS)
    charts[t] = new LineChart($("chart-" + t), { xLabel: "training step", integerX: true });
  charts.steps = new LineChart($("chart-steps"), { xLabel: "seconds" });
  charts.replay = new LineChart($("chart-replay"), { xLabel: "seconds" });
  charts.latency = new LineChart($("chart-latency"), {
    xLabel: "seconds", empty: "no act requests in the last seconds" });
  charts.returns = new LineChart($("chart-returns"), {
    xLabel: "episode", integerX: true, empty: "no episode reported yet" });
  charts.plan = new LineChart($("chart-plan"), {
    xLabel: "steps ahead", yLabel: "predicted reward", integerX: true, empty: "press Plan" });
  charts.planActions = new LineChart($("chart-plan-actions"), {
    xLabel: "steps ahead", yLabel: "planned action", integerX: true, empty: "press Plan" });

  const state = {
    agents: [],
    selected: null, /* agent name */
    info: null, /* its agent object */
    series: null,
    latencySnaps: [], /* [{t, buckets: [[le, cumulative count]]}] */
  };

  function freshSeries() {
    const s = { t0: performance.now(), lastStep: -1, steps: [], replay: [], p50: [], p99: [] };
    for (const t of TERMS) s[t] = [];
    return s;
  }

  const now = () => (performance.now() - state.series.t0) / 1000;
  const push = (arr, p) => {
    arr.push(p);
    if (arr.length > KEEP) arr.splice(0, arr.length - KEEP);
  };

  function showError(el, err) {
    if (!err) {
      el.textContent = "";
      return;
    }
    let msg = err.message || String(err);
    if (err.status === 401 || err.status === 403) msg += " - set the API token (top right)";
    el.textContent = msg;
  }

  /* ---- agents ---- */

  function selectAgent(name) {
    if (name === state.selected) return;
    state.selected = name;
    state.info = null;
    state.series = freshSeries();
    history.replaceState(null, "", name ? "#agent=" + encodeURIComponent(name) : "#");
    $("plan-session").value = name ? Elbod.gameSession(name) : "";
    $("plan-obs").value = "";
    charts.plan.update([]);
    charts.planActions.update([]);
    $("plan-info").textContent = "";
    showError($("plan-error"), null);
    renderAgents();
    redrawLive();
    charts.returns.update([]);
    if (name) {
      pollTraining();
      pollEpisodes();
    }
  }

  function renderAgents() {
    const ul = $("agents");
    ul.textContent = "";
    for (const a of state.agents) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.agent = a.name;
      if (a.name === state.selected) b.className = "selected";
      const dot = document.createElement("span");
      const st = a.status || {};
      dot.className = "dot " + (st.paused ? "paused" : st.training ? "on" : "off");
      dot.title = st.paused ? "paused" : st.training ? "training" : "idle";
      b.append(dot, document.createTextNode(a.name));
      const sub = document.createElement("span");
      sub.className = "sub";
      sub.textContent = a.observation_dim + "→" + a.action_dim + " · step " + st.step +
                        " · " + a.sessions + " session" + (a.sessions === 1 ? "" : "s");
      b.append(sub);
      b.addEventListener("click", () => selectAgent(a.name));
      li.append(b);
      ul.append(li);
    }
    const none = state.agents.length === 0;
    $("empty").hidden = !none;
    $("detail").hidden = none || !state.selected;
  }

  async function pollAgents() {
    try {
      const r = await api.agents();
      state.agents = r.agents || [];
      showError($("agents-error"), null);
      const names = state.agents.map((a) => a.name);
      const want = decodeURIComponent((/#agent=([^&]*)/.exec(location.hash) || [])[1] || "");
      if (!state.selected || !names.includes(state.selected)) {
        const pick = names.includes(want) ? want : names[0] || null;
        if (pick !== state.selected) {
          state.selected = null;
          selectAgent(pick);
        }
      }
      state.info = state.agents.find((a) => a.name === state.selected) || null;
      renderAgents();
      renderFacts();
    } catch (e) {
      showError($("agents-error"), e);
    }
  }

  function renderFacts() {
    const a = state.info;
    if (!a) return;
    $("agent-name").textContent = a.name;
    const st = a.status || {};
    const box = a.action_low.map((lo, i) => "[" + fmt(lo) + ", " + fmt(a.action_high[i]) + "]");
    const facts = [
      ["observations", a.observation_dim],
      ["actions", a.action_dim + " in " + box.join(" × ")],
      ["model version", st.step],
      ["replay", st.replay_size + " transitions"],
      ["received", st.transitions_total],
      ["sessions", a.sessions],
      ["planner", a.planner.method + ", horizon " + a.planner.horizon + ", population " +
                  a.planner.population],
      ["training", st.paused ? "paused" : st.training ? "running" : "idle"],
    ];
    const el = $("facts");
    el.textContent = "";
    for (const [k, v] of facts) {
      const d = document.createElement("div");
      const s = document.createElement("span");
      s.textContent = k;
      d.append(s, document.createTextNode(String(v)));
      el.append(d);
    }
    const b = document.createElement("button");
    b.type = "button";
    b.id = "pause";
    b.textContent = st.paused ? "Resume training" : "Pause training";
    b.addEventListener("click", async () => {
      try {
        await api.setTraining(a.name, st.paused ? "resume" : "pause");
        await pollAgents();
      } catch (e) {
        showError($("detail-error"), e);
      }
    });
    el.append(b);
  }

  /* ---- live series ---- */

  function redrawLive() {
    const s = state.series;
    if (!s) return;
    for (const t of TERMS) charts[t].update([{ name: t, points: s[t] }]);
    charts.steps.update([{ name: "steps/s", points: s.steps }]);
    charts.replay.update([{ name: "transitions", points: s.replay, color: "#2f855a" }]);
    charts.latency.update([
      { name: "p50", points: s.p50, color: "#2b6cb0" },
      { name: "p99", points: s.p99, color: "#c53030" },
    ]);
  }

  async function pollTraining() {
    const name = state.selected;
    if (!name) return;
    try {
      const st = await api.training(name);
      if (name !== state.selected) return;
      const s = state.series;
      const t = now();
      if (st.step < s.lastStep) {
        /* A new agent of the same name (deleted and created again): start the curves anew. */
        for (const k of TERMS) s[k] = [];
      }
      if (st.step !== s.lastStep && st.step > 0) {
        for (const k of TERMS)
          if (st.terms[k] !== null) push(s[k], [st.step, st.terms[k]]);
        s.lastStep = st.step;
      }
      push(s.steps, [t, st.steps_per_sec || 0]);
      push(s.replay, [t, st.replay_size]);
      showError($("detail-error"), null);
    } catch (e) {
      showError($("detail-error"), e);
    }
  }

  /* Cumulative act-route latency buckets of /metrics: [[le seconds, count]], le ascending. */
  function actBuckets(text) {
    const byLe = new Map();
    for (const m of Elbod.parseMetrics(text)) {
      if (m.name !== "elbod_http_request_duration_seconds_bucket") continue;
      if (!ACT_ROUTES.includes(m.labels.route)) continue;
      const le = m.labels.le === "+Inf" ? Infinity : parseFloat(m.labels.le);
      byLe.set(le, (byLe.get(le) || 0) + m.value);
    }
    return [...byLe.entries()].sort((a, b) => a[0] - b[0]);
  }

  async function pollMetrics() {
    if (!state.selected) return;
    try {
      const text = await api.metrics();
      const t = now();
      const cum = actBuckets(text);
      const snaps = state.latencySnaps;
      snaps.push({ t: performance.now() / 1000, cum });
      while (snaps.length > 2 && snaps[snaps.length - 1].t - snaps[1].t >= LATENCY_WINDOW_S)
        snaps.shift();
      if (snaps.length < 2) return;
      const old = new Map(snaps[0].cum);
      /* Requests of the window, per bucket (not cumulative). */
      let prevNew = 0, prevOld = 0;
      const buckets = cum.map(([le, c]) => {
        const o = old.get(le) || 0;
        const d = c - prevNew - (o - prevOld);
        prevNew = c;
        prevOld = o;
        return [le, Math.max(0, d)];
      });
      const p50 = Elbod.histogramQuantile(0.5, buckets);
      const p99 = Elbod.histogramQuantile(0.99, buckets);
      if (isFinite(p50)) {
        push(state.series.p50, [t, p50 * 1000]);
        push(state.series.p99, [t, p99 * 1000]);
      }
    } catch (e) {
      showError($("detail-error"), e);
    }
  }

  async function pollEpisodes() {
    const name = state.selected;
    if (!name) return;
    try {
      const r = await api.episodes(name);
      if (name !== state.selected) return;
      const pts = r.episodes.map((e) => [e.index, e.return]);
      /* Moving average over 10 episodes. */
      const avg = [];
      let sum = 0;
      pts.forEach((p, i) => {
        sum += p[1];
        if (i >= 10) sum -= pts[i - 10][1];
        avg.push([p[0], sum / Math.min(i + 1, 10)]);
      });
      charts.returns.update([
        { name: "return", points: pts, dots: true, color: "#6b46c1" },
        { name: "mean of 10", points: avg, color: "#b7791f" },
      ]);
    } catch (e) {
      showError($("detail-error"), e);
    }
  }

  /* ---- plans ---- */

  let planBusy = false;

  async function runPlan() {
    const name = state.selected;
    if (!name || planBusy) return;
    const body = {};
    const sid = $("plan-session").value.trim();
    const obsText = $("plan-obs").value.trim();
    if (sid) body.session_id = sid;
    if (obsText) {
      body.observation = obsText.split(/[\s,]+/).filter(Boolean).map(Number);
    } else if (!sid) {
      const dx = state.info ? state.info.observation_dim : 1;
      body.observation = new Array(dx).fill(0);
      $("plan-obs").placeholder = "zeros (" + dx + ")";
    }
    planBusy = true;
    $("plan-run").disabled = true;
    try {
      const r = await api.plan(name, body);
      if (name !== state.selected) return;
      const p = r.plan;
      const rw = p.predicted_rewards.map((v, i) => [i + 1, v]);
      const band = p.predicted_rewards.map((v, i) => {
        const sd = p.predicted_reward_std[i];
        return [i + 1, v - sd, v + sd];
      });
      charts.plan.update([{ name: "predicted reward ± std", points: rw, band, color: "#2b6cb0" }]);
      const da = p.actions.length ? p.actions[0].length : 0;
      const series = [];
      for (let j = 0; j < da; j++) {
        series.push({
          name: da > 1 ? "a" + j : "action ± std",
          points: p.actions.map((a, i) => [i + 1, a[j]]),
          band: p.actions.map((a, i) => [i + 1, a[j] - p.action_std[i][j], a[j] + p.action_std[i][j]]),
        });
      }
      charts.planActions.update(series);
      const t = p.terms;
      $("plan-info").textContent =
        (sid ? "session " + sid + " (step " + r.episode_step + ")" : "observation " +
         JSON.stringify(body.observation)) +
        " · model version " + r.model_version + " · " + fmt(r.plan_ms, 1) + " ms, " +
        r.iterations + " iterations" + (r.degraded ? " (degraded)" : "") +
        " · expected return " + fmt(t.expected_return) + ", info bonus " + fmt(t.info_bonus) +
        ", action log-ratio " + fmt(t.action_logratio) + ", terminal value " +
        fmt(t.terminal_value);
      showError($("plan-error"), null);
    } catch (e) {
      let err = e;
      if (e.code === "session_not_found")
        err = new Error(e.message + " - the session is closed; play the game or clear the field");
      showError($("plan-error"), err);
    } finally {
      planBusy = false;
      $("plan-run").disabled = false;
    }
  }

  $("plan-run").addEventListener("click", runPlan);
  $("plan-game").addEventListener("click", () => {
    const sid = state.selected ? Elbod.gameSession(state.selected) : "";
    $("plan-session").value = sid;
    if (!sid) showError($("plan-error"), new Error("no game session for this agent in this browser"));
  });

  /* ---- loops ---- */

  function every(ms, fn) {
    const run = async () => {
      await fn();
      setTimeout(run, ms);
    };
    run();
  }

  Elbod.mountTokenField($("token"), $("token-save"), $("token-status"));
  api.version().then((v) => ($("version").textContent = "v" + v.version + " · API " + v.api))
    .catch(() => {});
  state.series = freshSeries();
  every(3000, pollAgents);
  every(1000, async () => {
    await Promise.all([pollTraining(), pollMetrics()]);
    redrawLive();
  });
  every(2000, pollEpisodes);
  every(2000, async () => {
    if ($("plan-auto").checked) await runPlan();
  });
  window.addEventListener("resize", () => {
    for (const c of Object.values(charts)) c.draw();
  });
  window.addEventListener("hashchange", () => {
    const want = decodeURIComponent((/#agent=([^&]*)/.exec(location.hash) || [])[1] || "");
    if (want && state.agents.some((a) => a.name === want)) selectAgent(want);
  });
})();
