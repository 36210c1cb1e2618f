// Shared helpers of the sessionlog pages: JSON API calls with the page cookie, problem texts,
// a lost-connection banner, token renewal, and a small canvas plot of time series.
"use strict";
window.SL = (function () {
  const banner = () => document.getElementById("connection-banner");

  function showBanner(text) {
    const b = banner();
    if (!b) return;
    b.textContent = text;
    b.hidden = false;
  }

  // While the browser itself reports no network, the warning stays up whatever else arrives.
  function hideBanner() {
    if (!navigator.onLine) return;
    const b = banner();
    if (b) b.hidden = true;
  }

  // Calls the JSON API; the HttpOnly cookie signs the request in. Never throws: a network failure
  // is {ok: false, status: 0} so every caller shows it instead of failing silently.
  async function api(method, path, body) {
    const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, options);
    } catch (error) {
      showBanner("Connection to the server lost: the last action may not have reached it.");
      return { ok: false, status: 0, data: { detail: "the server could not be reached" } };
    }
    let data = null;
    const type = response.headers.get("content-type") || "";
    if (type.includes("json")) data = await response.json();
    if (response.status === 401) {
      showBanner("You are signed out. Sign in again to continue.");
    }
    return { ok: response.ok, status: response.status, data };
  }

  // The reasons of an RFC 9457 problem, one line each, for people to read.
  function problemLines(data) {
    if (!data) return ["no answer from the server"];
    if (Array.isArray(data.errors) && data.errors.length) {
      return data.errors.map((e) => (e.field ? e.field + ": " : "") + e.reason);
    }
    return [data.detail || data.title || "refused"];
  }

  function renderLines(element, lines, className) {
    element.replaceChildren();
    const list = document.createElement("ul");
    for (const line of lines) {
      const item = document.createElement("li");
      item.textContent = line;
      if (className) item.className = className;
      list.append(item);
    }
    element.append(list);
  }

  // Keeps the cookie's token fresh while a page stays open (every 10 minutes).
  function keepSignedIn() {
    setInterval(() => {
      fetch("/app/session/refresh", { method: "POST", credentials: "same-origin" }).catch(() => {
        showBanner("Connection to the server lost.");
      });
    }, 10 * 60 * 1000);
  }

  const COLOURS = ["#0b5cad", "#c2410c", "#15803d", "#7c3aed", "#be123c", "#0e7490", "#a16207", "#4d7c0f"];

  // A line plot of several series on one canvas; points are [x, y]. Drawn on demand, with axes,
  // a legend and the number of points in data-points (what the page shows, for tests and people).
  class Plot {
    constructor(canvas, options) {
      this.canvas = canvas;
      this.unit = options.unit || "";
      this.xLabel = options.xLabel || "s";
      this.window = options.window || null;
      this.series = new Map();
    }

    add(name, x, y) {
      if (!this.series.has(name)) this.series.set(name, []);
      const points = this.series.get(name);
      points.push([x, y]);
      if (points.length > 5000) points.shift();
    }

    set(name, points) {
      this.series.set(name, points.slice());
    }

    count() {
      let n = 0;
      for (const points of this.series.values()) n += points.length;
      return n;
    }

    draw() {
      const c = this.canvas;
      const g = c.getContext("2d");
      const w = c.width, h = c.height, left = 70, right = 20, top = 14, bottom = 30;
      g.clearRect(0, 0, w, h);
      g.font = "14px system-ui, sans-serif";
      c.dataset.points = String(this.count());
      let xMin = Infinity, xMax = -Infinity, yMax = 0;
      for (const points of this.series.values()) {
        for (const [x, y] of points) {
          xMin = Math.min(xMin, x); xMax = Math.max(xMax, x); yMax = Math.max(yMax, y);
        }
      }
      if (!isFinite(xMin)) { g.fillStyle = "#5b6470"; g.fillText("no data yet", left, h / 2); return; }
      if (this.window && xMax - xMin > this.window) xMin = xMax - this.window;
      if (xMax - xMin < 1) xMax = xMin + 1;
      yMax = yMax > 0 ? yMax * 1.1 : 1;
      const px = (x) => left + ((x - xMin) / (xMax - xMin)) * (w - left - right);
      const py = (y) => h - bottom - (y / yMax) * (h - top - bottom);
      g.strokeStyle = "#d5dbe1"; g.fillStyle = "#5b6470"; g.lineWidth = 1;
      for (let i = 0; i <= 4; i++) {
        const y = (yMax * i) / 4;
        g.beginPath(); g.moveTo(left, py(y)); g.lineTo(w - right, py(y)); g.stroke();
        g.fillText(y.toFixed(y < 10 ? 1 : 0) + " " + this.unit, 4, py(y) + 4);
      }
      for (let i = 0; i <= 5; i++) {
        const x = xMin + ((xMax - xMin) * i) / 5;
        g.fillText(x.toFixed(xMax - xMin < 10 ? 1 : 0) + " " + this.xLabel, px(x) - 10, h - 8);
      }
      let index = 0;
      for (const [name, points] of this.series) {
        const colour = COLOURS[index % COLOURS.length];
        g.strokeStyle = colour; g.lineWidth = 2; g.beginPath();
        let started = false;
        for (const [x, y] of points) {
          if (x < xMin) continue;
          if (!started) { g.moveTo(px(x), py(y)); started = true; } else { g.lineTo(px(x), py(y)); }
        }
        g.stroke();
        g.fillStyle = colour;
        g.fillText(name, w - right - 160, top + 14 + 18 * index);
        index += 1;
      }
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    window.addEventListener("offline", () => showBanner("Connection to the server lost: this screen is offline."));
    window.addEventListener("online", hideBanner);
  });

  return { api, problemLines, renderLines, showBanner, hideBanner, keepSignedIn, Plot };
})();
