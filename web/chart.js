/* chart.js: small line charts on a <canvas>, no library.
 *
 *   const c = new LineChart(canvas, {xLabel: "training step", yLabel: "nats", integerX: true});
 *   c.update([{name: "elbo", color: "#2b6cb0", points: [[x, y], ...],
 *              band: [[x, lo, hi], ...], dots: false}]);
 *
 * Each series is a line (or dots), with an optional shaded band (e.g. mean ± std). After every
 * update the canvas carries data-points = the number of points plotted (all series), and
 * window.elbodCharts[canvas.id] holds the same number: the browser tests read them.
 */
"use strict";

window.elbodCharts = window.elbodCharts || {};

const PALETTE = ["#2b6cb0", "#c05621", "#2f855a", "#9b2c2c", "#6b46c1", "#b7791f", "#319795"];

/* Tick values covering [lo, hi] with about n steps of 1, 2 or 5 times a power of ten (at least
 * minStep when given). */
function niceTicks(lo, hi, n, minStep) {
  const span = hi - lo;
  if (!(span > 0) || !isFinite(span)) return { ticks: [lo], step: 1 };
  const raw = span / n;
  let step = Math.pow(10, Math.floor(Math.log10(raw)));
  const err = raw / step;
  if (err >= 7.5) step *= 10;
  else if (err >= 3.5) step *= 5;
  else if (err >= 1.5) step *= 2;
  if (minStep && step < minStep) step = minStep;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
    ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return { ticks, step };
}

function tickLabel(v, step) {
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(step >= 1e6 ? 0 : 1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(step >= 1e3 ? 0 : 1) + "k";
  const d = step >= 1 ? 0 : Math.min(6, -Math.floor(Math.log10(step)));
  return v.toFixed(d);
}

function valueLabel(v) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
  return v.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : 3);
}

class LineChart {
  constructor(canvas, opts) {
    this.canvas = canvas;
    this.opts = Object.assign({ xLabel: "", yLabel: "", empty: "waiting for data" }, opts || {});
    this.series = [];
    this.publish(0);
    this.draw();
  }

  publish(n) {
    this.canvas.dataset.points = String(n);
    if (this.canvas.id) window.elbodCharts[this.canvas.id] = n;
  }

  count() {
    return this.series.reduce((s, se) => s + se.points.length, 0);
  }

  update(series) {
    this.series = series.map((s, i) => ({
      name: s.name || "",
      color: s.color || PALETTE[i % PALETTE.length],
      points: (s.points || []).filter((p) => isFinite(p[0]) && isFinite(p[1])),
      band: (s.band || []).filter((p) => isFinite(p[0]) && isFinite(p[1]) && isFinite(p[2])),
      dots: !!s.dots,
      width: s.width || 1.6,
    }));
    this.publish(this.count());
    this.draw();
  }

  draw() {
    const cv = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = cv.clientWidth || 300;
    const h = cv.clientHeight || 160;
    if (cv.width !== Math.round(w * dpr) || cv.height !== Math.round(h * dpr)) {
      cv.width = Math.round(w * dpr);
      cv.height = Math.round(h * dpr);
    }
    const g = cv.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    g.font = "11px system-ui, sans-serif";
    const m = { l: this.opts.yLabel ? 64 : 50, r: 10, t: 20, b: this.opts.xLabel ? 30 : 18 };
    const pw = w - m.l - m.r;
    const ph = h - m.t - m.b;

    /* Data range. */
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const s of this.series) {
      for (const p of s.points) {
        x0 = Math.min(x0, p[0]); x1 = Math.max(x1, p[0]);
        y0 = Math.min(y0, p[1]); y1 = Math.max(y1, p[1]);
      }
      for (const p of s.band) {
        x0 = Math.min(x0, p[0]); x1 = Math.max(x1, p[0]);
        y0 = Math.min(y0, p[1]); y1 = Math.max(y1, p[2]);
      }
    }
    g.strokeStyle = "#cbd5e0";
    g.lineWidth = 1;
    g.strokeRect(m.l + 0.5, m.t + 0.5, pw, ph);
    if (!isFinite(x0)) {
      g.fillStyle = "#718096";
      g.textAlign = "center";
      g.textBaseline = "middle";
      g.fillText(this.opts.empty, m.l + pw / 2, m.t + ph / 2);
      return;
    }
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    if (this.series.some((s) => s.dots)) {
      /* Dots at the ends stay whole. */
      const pad = Math.max((x1 - x0) * 0.03, this.opts.integerX ? 0.5 : 0);
      x0 -= pad; x1 += pad;
    }
    if (y1 === y0) {
      const d = Math.abs(y0) > 0 ? Math.abs(y0) * 0.1 : 1;
      y0 -= d; y1 += d;
    } else {
      const pad = (y1 - y0) * 0.06;
      y0 -= pad; y1 += pad;
    }
    const X = (x) => m.l + ((x - x0) / (x1 - x0)) * pw;
    const Y = (y) => m.t + ph - ((y - y0) / (y1 - y0)) * ph;

    /* Grid and ticks. */
    g.fillStyle = "#4a5568";
    g.strokeStyle = "#edf2f7";
    const yt = niceTicks(y0, y1, Math.max(2, Math.floor(ph / 28)));
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (const v of yt.ticks) {
      const y = Math.round(Y(v)) + 0.5;
      g.beginPath(); g.moveTo(m.l + 1, y); g.lineTo(m.l + pw, y); g.stroke();
      g.fillText(tickLabel(v, yt.step), m.l - 4, y);
    }
    const xt = niceTicks(x0, x1, Math.max(2, Math.floor(pw / 70)), this.opts.integerX ? 1 : 0);
    g.textAlign = "center";
    g.textBaseline = "top";
    for (const v of xt.ticks) {
      const x = Math.round(X(v)) + 0.5;
      g.beginPath(); g.moveTo(x, m.t + 1); g.lineTo(x, m.t + ph); g.stroke();
      const label = tickLabel(v, xt.step);
      const half = g.measureText(label).width / 2;
      g.fillText(label, Math.max(half + 1, Math.min(w - half - 1, x)), m.t + ph + 3);
    }
    if (this.opts.xLabel) {
      g.fillStyle = "#718096";
      g.fillText(this.opts.xLabel, m.l + pw / 2, m.t + ph + 15);
    }
    if (this.opts.yLabel) {
      g.save();
      g.translate(10, m.t + ph / 2);
      g.rotate(-Math.PI / 2);
      g.textAlign = "center";
      g.textBaseline = "middle";
      g.fillStyle = "#718096";
      g.fillText(this.opts.yLabel, 0, 0);
      g.restore();
    }

    /* Bands, then lines and dots, clipped to the plot. */
    g.save();
    g.beginPath();
    g.rect(m.l, m.t, pw, ph);
    g.clip();
    for (const s of this.series) {
      if (s.band.length < 2) continue;
      g.beginPath();
      s.band.forEach((p, i) => (i ? g.lineTo(X(p[0]), Y(p[2])) : g.moveTo(X(p[0]), Y(p[2]))));
      for (let i = s.band.length - 1; i >= 0; i--) g.lineTo(X(s.band[i][0]), Y(s.band[i][1]));
      g.closePath();
      g.globalAlpha = 0.18;
      g.fillStyle = s.color;
      g.fill();
      g.globalAlpha = 1;
    }
    for (const s of this.series) {
      g.strokeStyle = s.color;
      g.fillStyle = s.color;
      if (s.dots) {
        for (const p of s.points) {
          g.beginPath();
          g.arc(X(p[0]), Y(p[1]), 2, 0, 2 * Math.PI);
          g.fill();
        }
      } else if (s.points.length === 1) {
        g.beginPath();
        g.arc(X(s.points[0][0]), Y(s.points[0][1]), 2.5, 0, 2 * Math.PI);
        g.fill();
      } else {
        g.lineWidth = s.width;
        g.lineJoin = "round";
        g.beginPath();
        s.points.forEach((p, i) => (i ? g.lineTo(X(p[0]), Y(p[1])) : g.moveTo(X(p[0]), Y(p[1]))));
        g.stroke();
      }
    }
    g.restore();

    /* Legend: name and latest value of each series. */
    g.textAlign = "left";
    g.textBaseline = "middle";
    let lx = m.l;
    for (const s of this.series) {
      if (!s.name) continue;
      const last = s.points.length ? s.points[s.points.length - 1][1] : NaN;
      const label = s.name + " " + valueLabel(last);
      g.fillStyle = s.color;
      g.fillRect(lx, 7, 10, 3);
      g.fillStyle = "#2d3748";
      g.fillText(label, lx + 13, 9);
      lx += 13 + g.measureText(label).width + 12;
    }
  }
}
