// Browser tests of the dashboard (GET /) and the cart-pole game (/ui/cartpole.html).
//
// Starts a real elbod (ELBOD_BIN, default build/elbod) on 127.0.0.1 with a free port and a
// temporary data directory, feeds an agent experience so that it trains, then drives Debian's
// headless Chromium (/usr/bin/chromium, CHROMIUM_BIN) with playwright-core: the dashboard must
// plot data (every chart reports its number of points in data-points / window.elbodCharts), the
// game must receive actions and report returns, every API request must carry the token entered
// in the page, and nothing may be fetched from another origin. Screenshots go to
// tests/browser/artifacts/. When this elbod has API keys (--keys-file), it runs with keys
// required and the test's token as an admin key, so the pages are tested with authentication on.
// Prints "browser: N passed, M failed"; exit status 1 on a failure.
//
// Usage (from the repository root): make test-browser, or node tests/browser/run.mjs
import { spawn, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..", "..");
const ELBOD = path.resolve(ROOT, process.env.ELBOD_BIN || "build/elbod");
const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const ARTIFACTS = path.join(HERE, "artifacts");
const TOKEN = "browser-test-token-42";
const AGENT = "browser-test";
const GAME_AGENT = "cartpole-web";
const DEADLINE = Date.now() + 170_000; // a hard stop, whatever hangs

let passed = 0, failed = 0;
let elbodChild = null; // killed by the hard timeout too
const t0 = Date.now();
const elapsed = () => ((Date.now() - t0) / 1000).toFixed(1) + "s";

async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${elapsed()})`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name} (${elapsed()}): ${e && e.stack ? e.stack : e}`);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, fn, timeoutMs) {
  const end = Math.min(Date.now() + timeoutMs, DEADLINE);
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await sleep(250);
  }
}

// ---- elbod ----------------------------------------------------------------------------------

// With a keys file when this elbod has API keys (--keys-file): the pages must then work with
// authentication on, the token entered in them being the test's admin key.
function keysArgs(dataDir) {
  const help = spawnSync(ELBOD, ["--help"], { encoding: "utf8" });
  if (!/--keys-file\b/.test((help.stdout || "") + (help.stderr || ""))) return [];
  const file = path.join(dataDir, "..", path.basename(dataDir) + ".keys");
  const hash = crypto.createHash("sha256").update(TOKEN).digest("hex");
  fs.writeFileSync(file, `browser-test admin ${hash}\n`, { mode: 0o600 });
  return ["--keys-file", file];
}

function startElbod(dataDir, extra) {
  return new Promise((resolve, reject) => {
    const child = spawn(ELBOD, ["--host", "127.0.0.1", "--port", "0", "--data-dir", dataDir, ...extra],
                        { stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    const timer = setTimeout(() => reject(new Error("elbod did not start:\n" + log)), 20000);
    const onData = (buf) => {
      log += buf.toString();
      const m = /event=listening .*port=(\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]), log: () => log });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", (e) => { clearTimeout(timer); reject(e); });
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`elbod exited (${code}):\n${log}`)); });
  });
}

// SIGTERM, then SIGKILL after 15 s; resolves to the exit code (null after a signal).
async function stopElbod(child) {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise((r) => child.once("exit", (code) => r(code)));
  process.kill(child.pid, "SIGTERM");
  const t = setTimeout(() => { try { process.kill(child.pid, "SIGKILL"); } catch (e) { /* gone */ } }, 15000);
  const code = await exited;
  clearTimeout(t);
  return code;
}

// ---- main -----------------------------------------------------------------------------------

async function main() {
  assert(fs.existsSync(ELBOD), `no elbod at ${ELBOD} (run make first)`);
  assert(fs.existsSync(CHROMIUM), `no browser at ${CHROMIUM} (Debian's chromium: make deps)`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "elbod-browser-data-"));
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "elbod-browser-profile-"));
  let elbod = null, context = null;
  try {
    const keys = keysArgs(dataDir);
    elbod = await startElbod(dataDir, keys);
    elbodChild = elbod.child;
    console.log(`elbod on 127.0.0.1:${elbod.port}, API keys ${keys.length ? "required" : "not supported by this build"}`);
    const base = `http://127.0.0.1:${elbod.port}`;
    const http = async (method, p, body) => {
      const init = { method, headers: { Authorization: "Bearer " + TOKEN } };
      if (body !== undefined) {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      const r = await fetch(base + p, init);
      const text = await r.text();
      let json = null;
      try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
      return { status: r.status, headers: r.headers, text, json };
    };

    await check("elbod serves the dashboard's files", async () => {
      const idx = await http("GET", "/");
      assert(idx.status === 200, "GET / " + idx.status);
      assert(idx.headers.get("content-type").startsWith("text/html"), "content type of /");
      assert(idx.headers.get("cache-control") === "no-cache", "cache-control of /");
      assert(idx.text.includes("/ui/dashboard.js?v="), "index.html loads dashboard.js with a version");
      assert(!idx.text.includes("@ASSET_VERSION@"), "the version placeholder is replaced");
      for (const [f, ct] of [["dashboard.js", "text/javascript"], ["chart.js", "text/javascript"],
                             ["style.css", "text/css"], ["cartpole.html", "text/html"]]) {
        const r = await http("GET", "/ui/" + f);
        assert(r.status === 200, `/ui/${f}: ${r.status}`);
        assert(r.headers.get("content-type").startsWith(ct), `/ui/${f}: ${r.headers.get("content-type")}`);
      }
      const js = await http("GET", "/ui/api.js");
      assert(/max-age=\d+/.test(js.headers.get("cache-control") || ""), "scripts are cacheable");
      const missing = await http("GET", "/ui/nothing.js");
      assert(missing.status === 404 && missing.json.error.code === "not_found", "unknown file: 404");
      const post = await http("POST", "/");
      assert(post.status === 405, "POST /: " + post.status);
      // The pages load without a key (a browser sends none with a page load) ...
      for (const p of ["/", "/ui/cartpole.html", "/ui/api.js"]) {
        const r = await fetch(base + p);
        assert(r.status === 200, `${p} without a key: ${r.status}`);
      }
      // ... the API does not, when keys are on.
      const nokey = await fetch(base + "/v1/agents");
      assert(nokey.status === (keys.length ? 401 : 200), "GET /v1/agents without a key: " + nokey.status);
    });

    await check("an agent trains on submitted transitions", async () => {
      const r = await http("POST", "/v1/agents", {
        name: AGENT, observation_dim: 3, action_dim: 1, action_low: [-2], action_high: [2],
        training: { train_ratio: 0, min_transitions: 50, max_steps_per_sec: 15 },
      });
      assert(r.status === 201, "create: " + r.text);
      // Pendulum-like episodes: random torques, rewards from the angle.
      const episodes = [];
      for (let e = 0; e < 3; e++) {
        let th = Math.PI * (Math.random() * 2 - 1), thd = 0;
        const obs = [], act = [], rew = [];
        for (let t = 0; t <= 40; t++) {
          obs.push([Math.cos(th), Math.sin(th), thd]);
          if (t === 40) break;
          const u = Math.random() * 4 - 2;
          act.push([u]);
          rew.push(-(th * th + 0.1 * thd * thd + 0.001 * u * u));
          thd = Math.max(-8, Math.min(8, thd + (15 * Math.sin(th) + 3 * u) * 0.05));
          th = Math.atan2(Math.sin(th + thd * 0.05), Math.cos(th + thd * 0.05));
        }
        episodes.push({ observations: obs, actions: act, rewards: rew });
      }
      const s = await http("POST", `/v1/agents/${AGENT}/transitions`, { episodes });
      assert(s.status === 200 && s.json.accepted === 120, "submit: " + s.text);
      await until("training steps", async () => (await http("GET", `/v1/agents/${AGENT}/training`)).json.step > 0, 30000);
    });

    await check("episode returns: report and list", async () => {
      for (let i = 0; i < 12; i++) {
        const r = await http("POST", `/v1/agents/${AGENT}/episodes/report`, { return: -900 + 60 * i + 40 * Math.random(), steps: 200 });
        assert(r.status === 200 && r.json.index === i, "report: " + r.text);
      }
      const bad = await http("POST", `/v1/agents/${AGENT}/episodes/report`, { return: 1, extra: 2 });
      assert(bad.status === 422 && bad.json.error.code === "unknown_field", "unknown field: " + bad.text);
      const none = await http("POST", `/v1/agents/${AGENT}/episodes/report`, { steps: 2 });
      assert(none.status === 422 && none.json.error.field === "return", "missing return: " + none.text);
      const l = await http("GET", `/v1/agents/${AGENT}/episodes`);
      assert(l.status === 200 && l.json.total === 12 && l.json.episodes.length === 12, "list: " + l.text);
      assert(l.json.episodes[11].index === 11 && l.json.episodes[0].steps === 200, "order");
      const nf = await http("GET", "/v1/agents/nope/episodes");
      assert(nf.status === 404, "unknown agent: " + nf.status);
    });

    // ---- the browser ----
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      viewport: { width: 1280, height: 860 },
      timeout: 60000,
    });
    const problems = []; // requests elsewhere, API requests without the token, page errors
    const watch = (page, label) => {
      page.on("request", (req) => {
        const u = req.url();
        if (u.startsWith("data:") || u.startsWith("blob:") || u === "about:blank") return;
        if (!u.startsWith(base + "/")) problems.push(`${label}: request to another origin: ${u}`);
        const p = new URL(u).pathname;
        if ((p.startsWith("/v1/") || p === "/metrics") &&
            req.headers()["authorization"] !== "Bearer " + TOKEN)
          problems.push(`${label}: ${req.method()} ${p} without the token`);
      });
      // Failed requests: only the dashboard's polls of the game's agent while "Reset agent"
      // deletes and recreates it may miss it (404).
      page.on("response", (resp) => {
        if (resp.status() < 400) return;
        const p = new URL(resp.url()).pathname;
        const what = `${label}: ${resp.request().method()} ${p} answered ${resp.status()}`;
        if (resp.status() === 404 && label === "dashboard" && inReset &&
            p.startsWith(`/v1/agents/${GAME_AGENT}/`))
          return;
        problems.push(what);
      });
      page.on("pageerror", (e) => problems.push(`${label}: page error: ${e.message}`));
      page.on("console", (m) => {
        // failed loads are judged by their responses above
        if (m.type() === "error" && !m.text().startsWith("Failed to load resource"))
          problems.push(`${label}: console error: ${m.text()}`);
      });
    };
    let inReset = false;
    const points = (page, id) => page.evaluate((i) => (window.elbodCharts || {})[i] || 0, id);

    const dash = context.pages()[0] || (await context.newPage());
    await check("dashboard: the token is kept and sent", async () => {
      await dash.goto(base + "/", { waitUntil: "load" });
      await dash.fill("#token", TOKEN);
      await dash.click("#token-save");
      assert((await dash.textContent("#token-status")) === "token set", "token status");
      watch(dash, "dashboard"); // from here on every API request must carry the token
      await dash.reload({ waitUntil: "load" });
      assert((await dash.inputValue("#token")) === TOKEN, "the token survives a reload");
    });

    await check("dashboard: lists the agent and plots its training with data", async () => {
      await dash.waitForSelector(`#agents button[data-agent="${AGENT}"]`, { timeout: 15000 });
      await dash.click(`#agents button[data-agent="${AGENT}"]`);
      const want = ["chart-elbo", "chart-reward", "chart-info_gain", "chart-state_kl",
                    "chart-action_kl", "chart-steps", "chart-replay"];
      await until("points in every training chart", async () => {
        for (const id of want) if ((await points(dash, id)) < 3) return false;
        return true;
      }, 40000);
      await until("the reported returns", async () => (await points(dash, "chart-returns")) >= 12, 10000);
      for (const id of want) {
        const n = Number(await dash.getAttribute("#" + id, "data-points"));
        assert(n >= 3, `${id}: data-points ${n}`);
      }
      const facts = await dash.textContent("#facts");
      assert(facts.includes("model version"), "agent facts: " + facts);
    });

    await check("dashboard: a plan from an observation is drawn with its spread", async () => {
      await dash.fill("#plan-session", "");
      await dash.fill("#plan-obs", "1, 0, 0");
      await dash.click("#plan-run");
      await until("the plan chart", async () => (await points(dash, "chart-plan")) > 0, 20000);
      const horizon = (await http("GET", `/v1/agents/${AGENT}`)).json.planner.horizon;
      assert((await points(dash, "chart-plan")) === horizon, "one point per planned step");
      assert((await points(dash, "chart-plan-actions")) === horizon, "planned actions");
      assert((await dash.textContent("#plan-info")).includes("model version"), "plan info");
    });

    const game = await context.newPage();
    watch(game, "game");
    await check("game: plays through the API, actions arrive, the model version shows", async () => {
      await game.goto(base + "/ui/cartpole.html?speed=fast&autostart=1", { waitUntil: "load" });
      await until("more than 20 actions", async () =>
        Number(await game.getAttribute("body", "data-actions")) > 20, 60000);
      const mv = await game.getAttribute("body", "data-model-version");
      assert(mv !== null && mv !== "" && Number(mv) >= 0, "model version shown: " + mv);
      assert(Number(await game.textContent("#actions")) > 20, "the counter on the page");
      const a = await http("GET", `/v1/agents/${GAME_AGENT}`);
      assert(a.status === 200 && a.json.observation_dim === 5 && a.json.action_dim === 1 &&
             a.json.action_low[0] === -1 && a.json.action_high[0] === 1, "the game's agent: " + a.text);
      assert(a.json.status.transitions_total > 0, "the game's steps are recorded");
    });

    await check("game: policy mode, episodes end and their returns are reported", async () => {
      await game.click("#mode");
      assert((await game.textContent("#mode")) === "Mode: policy", "mode button");
      await until("a finished episode", async () =>
        Number(await game.getAttribute("body", "data-episodes")) >= 1, 60000);
      const l = await http("GET", `/v1/agents/${GAME_AGENT}/episodes`);
      assert(l.json.total >= 1, "reported: " + l.text);
      const ep = l.json.episodes[0];
      assert(ep.steps > 0 && ep.steps <= 200 && ep.return >= 0 && ep.return <= ep.steps, "a return: " + JSON.stringify(ep));
      await until("the game's returns chart", async () => (await points(game, "chart-game-returns")) >= 1, 5000);
      await game.screenshot({ path: path.join(ARTIFACTS, "cartpole.png") });
    });

    await check("dashboard: the game's agent, act latency, returns and a plan from the game's session", async () => {
      await dash.bringToFront();
      await dash.waitForSelector(`#agents button[data-agent="${GAME_AGENT}"]`, { timeout: 10000 });
      await dash.click(`#agents button[data-agent="${GAME_AGENT}"]`);
      await dash.click("#plan-game");
      const sid = await dash.inputValue("#plan-session");
      assert(sid.startsWith("s-"), "the game's session id: " + sid);
      await dash.fill("#plan-obs", "");
      await dash.click("#plan-run");
      await until("a plan from the session", async () =>
        (await points(dash, "chart-plan")) > 0 && (await dash.textContent("#plan-info")).includes(sid), 30000);
      await until("latency, returns and training points", async () =>
        (await points(dash, "chart-latency")) >= 4 && (await points(dash, "chart-returns")) >= 1 &&
        (await points(dash, "chart-replay")) >= 3 && (await points(dash, "chart-steps")) >= 3, 30000);
      await until("ELBO points of the game's agent", async () => (await points(dash, "chart-elbo")) >= 2, 30000);
      await dash.screenshot({ path: path.join(ARTIFACTS, "dashboard.png"), fullPage: true });
    });

    await check("game: Reset agent deletes and recreates it", async () => {
      const before = (await http("GET", `/v1/agents/${GAME_AGENT}`)).json.status.transitions_total;
      assert(before > 0, "transitions before: " + before);
      assert(await game.evaluate(() => window.game.episode >= 1), "an episode was played before");
      await game.bringToFront();
      inReset = true;
      await game.click("#reset");
      await until("the agent created anew", async () => {
        const a = await http("GET", `/v1/agents/${GAME_AGENT}`);
        return a.status === 200 && a.json.status.transitions_total < before;
      }, 20000);
      await until("actions from the new agent", async () =>
        game.evaluate(() => window.game.resets === 1 && window.game.actions > 3), 20000);
      await sleep(2500); // the dashboard's next polls find the new agent
      inReset = false;
      await game.click("#run"); // pause
      await until("the game paused", async () => (await game.textContent("#status")) === "paused", 10000);
      // The returns start anew: the new agent holds exactly those the page played since.
      const after = await http("GET", `/v1/agents/${GAME_AGENT}/episodes`);
      const played = await game.evaluate(() => window.game.returns.length);
      assert(after.json.total === played, `returns of the new agent: ${after.json.total} != ${played}`);
    });

    await check("no request left 127.0.0.1, every API request carried the token, no page errors", async () => {
      assert(problems.length === 0, problems.slice(0, 10).join("\n"));
    });
  } finally {
    if (context) await context.close().catch(() => {});
    if (elbod) {
      const code = await stopElbod(elbod.child);
      await check("elbod stops cleanly", async () => {
        assert(code === 0, `exit status ${code}:\n` + elbod.log().split("\n").slice(-30).join("\n"));
      });
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(dataDir + ".keys", { force: true });
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

const hard = setTimeout(() => {
  console.log("browser: the tests took too long");
  if (elbodChild && elbodChild.exitCode === null) process.kill(elbodChild.pid, "SIGKILL");
  process.exit(1);
}, 180_000);
try {
  await main();
} catch (e) {
  failed++;
  console.log("FAIL setup: " + (e && e.stack ? e.stack : e));
}
clearTimeout(hard);
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
