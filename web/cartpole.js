/* cartpole.js: the cart-pole swing-up of the example robot robot_cartpole (README, Example robots), simulated in the page and
 * played by an elbod agent through the REST API.
 *
 * One session; per control step one session act with the observation and the reward of the
 * previous action, then the answer's action is applied for 5 physics steps. At the episode's end
 * (200 steps, or |x| > 2.4) the last observation goes in with done (terminal) or truncated (the
 * step limit), as clients/c/robot.c does, and the return is reported to
 * POST /v1/agents/{name}/episodes/report. Every step is recorded, so the agent learns as it plays.
 *
 * URL parameters: agent=<name> (default cartpole-web), mode=plan|policy, speed=realtime|fast,
 * explore=1, autostart=1.
 */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const { api, fmt, sleep } = Elbod;

  /* ---- the environment (constants and dynamics of the shared README) ---- */
  const GRAVITY = 9.8, MASSCART = 1.0, MASSPOLE = 0.1, LENGTH = 0.5, FORCE_MAG = 10.0;
  const TAU = 0.01, SUBSTEPS = 5, X_LIMIT = 2.4, MAX_STEPS = 200;
  const TOTAL_MASS = MASSCART + MASSPOLE, PM_L = MASSPOLE * LENGTH;

  function normal(sd) {
    let u = 0;
    while (u === 0) u = Math.random();
    return sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
  }

  function envReset() {
    return { x: normal(0.05), xdot: normal(0.05), th: Math.PI + normal(0.05), thdot: normal(0.05) };
  }

  /* One control step with action u in [-1, 1]; returns the reward of the state after it. */
  function envStep(c, u) {
    u = Math.max(-1, Math.min(1, u));
    const force = FORCE_MAG * u;
    for (let k = 0; k < SUBSTEPS; k++) {
      const s = Math.sin(c.th), co = Math.cos(c.th);
      const temp = (force + PM_L * c.thdot * c.thdot * s) / TOTAL_MASS;
      const thacc = (GRAVITY * s - co * temp) / (LENGTH * (4 / 3 - MASSPOLE * co * co / TOTAL_MASS));
      const xacc = temp - PM_L * thacc * co / TOTAL_MASS;
      c.x += TAU * c.xdot;
      c.xdot += TAU * xacc;
      c.th += TAU * c.thdot;
      c.thdot += TAU * thacc;
    }
    return (1 + Math.cos(c.th)) / 2;
  }

  const observe = (c) => [c.x, c.xdot, Math.cos(c.th), Math.sin(c.th), c.thdot];

  /* ---- the game's state ---- */
  const params = new URLSearchParams(location.search);
  const G = {
    agent: params.get("agent") || "cartpole-web",
    mode: params.get("mode") === "policy" ? "policy" : "plan",
    speed: params.get("speed") === "fast" ? "fast" : "realtime",
    explore: params.get("explore") === "1",
    ready: false, /* the agent exists */
    sid: null,
    running: false,
    loop: null,
    env: envReset(),
    episode: 0,
    steps: 0,
    ret: 0,
    reward: 0, /* of the last action */
    action: 0,
    actions: 0, /* actions received */
    modelVersion: null,
    lat: [],
    returns: [], /* [{episode, ret, steps, modelVersion}] */
    best: -Infinity,
    resets: 0, /* agent resets done by this page */
  };
  window.game = G; /* for the browser tests and the curious */

  const returnsChart = new LineChart($("chart-game-returns"), {
    xLabel: "episode", integerX: true, empty: "no episode finished yet" });

  /* ---- drawing ---- */
  const stage = $("stage");

  function draw() {
    const g = stage.getContext("2d");
    const W = stage.width, H = stage.height;
    const scale = W / (2 * (X_LIMIT + 0.45)); /* pixels per metre */
    const cx = W / 2, ground = H * 0.52;
    const c = G.env;
    g.clearRect(0, 0, W, H);
    g.fillStyle = "#f7fafc";
    g.fillRect(0, 0, W, H);
    /* Track and its limits. */
    g.strokeStyle = "#a0aec0";
    g.lineWidth = 2;
    g.beginPath();
    g.moveTo(cx - X_LIMIT * scale, ground + 16);
    g.lineTo(cx + X_LIMIT * scale, ground + 16);
    g.stroke();
    g.fillStyle = "#c53030";
    for (const s of [-1, 1]) g.fillRect(cx + s * X_LIMIT * scale - 2, ground - 6, 4, 30);
    /* Cart. */
    const px = cx + c.x * scale;
    const cw = 0.5 * scale, ch = 0.25 * scale;
    g.fillStyle = "#2b6cb0";
    g.fillRect(px - cw / 2, ground - ch / 2, cw, ch);
    g.fillStyle = "#1a202c";
    for (const s of [-1, 1]) {
      g.beginPath();
      g.arc(px + s * cw * 0.3, ground + ch / 2 + 3, 5, 0, 2 * Math.PI);
      g.fill();
    }
    /* Force arrow of the last action. */
    if (G.action) {
      g.strokeStyle = "#dd6b20";
      g.lineWidth = 3;
      const ax = px + Math.sign(G.action) * (cw / 2 + 4), len = G.action * 40;
      g.beginPath();
      g.moveTo(ax, ground);
      g.lineTo(ax + len, ground);
      g.stroke();
    }
    /* Pole (2 * LENGTH long; th = 0 is upright, positive leans to +x). */
    const pl = 2 * LENGTH * scale;
    const tx = px + pl * Math.sin(c.th), ty = ground - pl * Math.cos(c.th);
    g.strokeStyle = "#975a16";
    g.lineWidth = 7;
    g.lineCap = "round";
    g.beginPath();
    g.moveTo(px, ground);
    g.lineTo(tx, ty);
    g.stroke();
    g.fillStyle = "#1a202c";
    g.beginPath();
    g.arc(px, ground, 4, 0, 2 * Math.PI);
    g.fill();
    /* Text: time, reward bar. */
    g.fillStyle = "#2d3748";
    g.font = "13px system-ui, sans-serif";
    g.fillText("episode " + G.episode + "   t = " + (G.steps * SUBSTEPS * TAU).toFixed(2) + " s" +
               "   reward " + G.reward.toFixed(3) + "   mode " + G.mode, 12, 20);
    g.fillStyle = "#e2e8f0";
    g.fillRect(12, 30, 150, 8);
    g.fillStyle = "#38a169";
    g.fillRect(12, 30, 150 * G.reward, 8);
  }

  /* ---- the panel ---- */
  function quantile(sorted, q) {
    if (!sorted.length) return NaN;
    const k = Math.max(0, Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1));
    return sorted[k];
  }

  function render() {
    $("agent").textContent = G.agent;
    $("episode").textContent = G.episode;
    $("step").textContent = G.steps + " / " + MAX_STEPS;
    $("return").textContent = G.ret.toFixed(2);
    const last = G.returns[G.returns.length - 1];
    $("last-return").textContent = last ? last.ret.toFixed(2) : "–";
    $("best-return").textContent = isFinite(G.best) ? G.best.toFixed(2) : "–";
    $("model-version").textContent = G.modelVersion === null ? "–" : G.modelVersion;
    $("actions").textContent = G.actions;
    const l = G.lat[G.lat.length - 1];
    $("latency").textContent = l === undefined ? "–" : l.toFixed(1) + " ms";
    const s = [...G.lat].sort((a, b) => a - b);
    $("latency-q").textContent = s.length
      ? quantile(s, 0.5).toFixed(1) + " / " + quantile(s, 0.99).toFixed(1) + " ms" : "–";
    $("action").textContent = fmt(G.action, 3);
    $("session").textContent = G.sid || "–";
    $("run").textContent = G.running ? "Pause" : "Start";
    $("mode").textContent = "Mode: " + G.mode;
    document.body.dataset.actions = String(G.actions);
    document.body.dataset.modelVersion = G.modelVersion === null ? "" : String(G.modelVersion);
    document.body.dataset.episodes = String(G.returns.length);
  }

  function renderReturns() {
    returnsChart.update([{ name: "return", dots: true, color: "#6b46c1",
                           points: G.returns.map((r) => [r.episode, r.ret]) }]);
    const list = $("returns-list");
    list.textContent = G.returns.slice(-8).reverse()
      .map((r) => "#" + r.episode + "  " + r.ret.toFixed(2) + "  (" + r.steps + " steps, v" +
                  r.modelVersion + ")").join("\n");
    list.style.whiteSpace = "pre";
  }

  function status(text) {
    $("status").textContent = text;
  }

  function showError(e) {
    let msg = e ? e.message || String(e) : "";
    if (e && (e.status === 401 || e.status === 403)) msg += " - set the API token (top right)";
    $("error").textContent = msg;
  }

  /* ---- talking to elbod ---- */
  const SPEC = (name) => ({
    name, observation_dim: 5, action_dim: 1, action_low: [-1], action_high: [1] });

  async function ensureAgent() {
    const list = await api.agents();
    if (!list.agents.some((a) => a.name === G.agent)) {
      status("creating agent " + G.agent + " …");
      try {
        await api.createAgent(SPEC(G.agent));
      } catch (e2) {
        if (e2.code !== "agent_exists") throw e2; /* created meanwhile: fine */
      }
    }
    G.ready = true;
  }

  async function openSession() {
    const r = await api.openSession(G.agent);
    G.sid = r.session_id;
    G.modelVersion = r.model_version;
    Elbod.setGameSession(G.agent, G.sid);
    /* A new session starts a new episode. */
    newEpisode();
  }

  function newEpisode() {
    G.env = envReset();
    G.steps = 0;
    G.ret = 0;
    G.reward = 0;
    G.action = 0;
  }

  function actBody(obs, extra) {
    return Object.assign({ observation: obs, reward: G.reward, mode: G.mode, explore: G.explore },
                         extra || {});
  }

  async function endEpisode(terminal) {
    /* The last observation with the last action's reward: its transition is recorded. */
    const r = await api.sessionAct(G.agent, G.sid, actBody(observe(G.env), {
      mode: "policy", explore: false, done: terminal, truncated: !terminal }));
    G.modelVersion = r.model_version;
    const rec = { episode: G.episode, ret: G.ret, steps: G.steps, modelVersion: G.modelVersion };
    G.returns.push(rec);
    if (G.returns.length > 1000) G.returns.shift();
    G.best = Math.max(G.best, G.ret);
    renderReturns();
    try {
      await api.reportEpisode(G.agent, G.ret, G.steps);
    } catch (e) {
      showError(e); /* the game goes on */
    }
    G.episode++;
    newEpisode();
  }

  async function controlStep() {
    if (!G.ready) await ensureAgent();
    if (!G.sid) await openSession();
    const t0 = performance.now();
    const r = await api.sessionAct(G.agent, G.sid, actBody(observe(G.env)));
    G.lat.push(performance.now() - t0);
    if (G.lat.length > 200) G.lat.shift();
    G.actions++;
    G.modelVersion = r.model_version;
    G.action = Math.max(-1, Math.min(1, r.action[0]));
    G.reward = envStep(G.env, G.action);
    G.ret += G.reward;
    G.steps++;
    const terminal = Math.abs(G.env.x) > X_LIMIT;
    if (terminal || G.steps >= MAX_STEPS) await endEpisode(terminal);
  }

  async function runLoop() {
    status("playing");
    while (G.running) {
      const t0 = performance.now();
      try {
        await controlStep();
        showError(null);
        if ($("status").textContent !== "playing") status("playing");
      } catch (e) {
        showError(e);
        if (e.code === "session_not_found") G.sid = null; /* expired or elbod restarted */
        else if (e.code === "agent_not_found") { G.ready = false; G.sid = null; }
        await sleep(1000);
      }
      draw();
      render();
      const wait = G.speed === "realtime" ? SUBSTEPS * TAU * 1000 - (performance.now() - t0) : 0;
      await sleep(Math.max(0, wait));
    }
    status("paused");
  }

  function start() {
    if (G.running) return;
    G.running = true;
    G.loop = runLoop();
    render();
  }

  async function stop() {
    G.running = false;
    if (G.loop) await G.loop;
    G.loop = null;
    render();
  }

  async function resetAgent() {
    const was = G.running;
    $("reset").disabled = true;
    await stop();
    try {
      status("deleting agent " + G.agent + " …");
      try {
        await api.deleteAgent(G.agent);
      } catch (e) {
        if (e.code !== "agent_not_found") throw e;
      }
      await api.createAgent(SPEC(G.agent));
      G.ready = true;
      G.sid = null;
      Elbod.setGameSession(G.agent, "");
      G.episode = 0;
      G.returns = [];
      G.best = -Infinity;
      G.actions = 0;
      G.lat = [];
      G.modelVersion = 0;
      G.resets++;
      newEpisode();
      renderReturns();
      status("agent " + G.agent + " created anew");
      showError(null);
    } catch (e) {
      showError(e);
    } finally {
      $("reset").disabled = false;
      draw();
      render();
    }
    if (was) start();
  }

  /* ---- wiring ---- */
  Elbod.mountTokenField($("token"), $("token-save"), $("token-status"));
  $("dash-link").href = "/#agent=" + encodeURIComponent(G.agent);
  $("run").addEventListener("click", () => (G.running ? stop() : start()));
  $("mode").addEventListener("click", () => {
    G.mode = G.mode === "plan" ? "policy" : "plan";
    render();
  });
  $("explore").checked = G.explore;
  $("explore").addEventListener("change", () => (G.explore = $("explore").checked));
  $("speed").value = G.speed;
  $("speed").addEventListener("change", () => (G.speed = $("speed").value));
  $("reset").addEventListener("click", resetAgent);
  /* Close the session when the page goes away (otherwise it expires after session_idle_s). */
  window.addEventListener("pagehide", () => {
    if (!G.sid) return;
    const headers = {};
    if (Elbod.token()) headers["Authorization"] = "Bearer " + Elbod.token();
    fetch("/v1/agents/" + encodeURIComponent(G.agent) + "/sessions/" + encodeURIComponent(G.sid),
          { method: "DELETE", headers, keepalive: true }).catch(() => {});
    Elbod.setGameSession(G.agent, "");
  });

  draw();
  render();
  renderReturns();
  status("press Start: the agent " + G.agent + " is created if it does not exist");
  if (params.get("autostart") === "1") start();
})();
