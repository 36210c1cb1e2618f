// Live session: follow GET /api/v1/sessions/{id}/stream (Server-Sent Events), plot current and
// impedance per channel, step intensity (each step re-approved by the server), pause/resume,
// notes, and STOP — the button or the Escape key — through the emergency stop, which never waits.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("live");
  const id = root.dataset.sessionId;
  const base = "/api/v1/sessions/" + id;
  const microcurrent = root.dataset.modality === "microcurrent";
  const stepUa = microcurrent ? 10 : 1000;
  const ENDED = ["completed", "stopped", "aborted"];
  const currentPlot = new SL.Plot(document.getElementById("current-plot"), { unit: microcurrent ? "µA" : "mA", window: 60 });
  const impedancePlot = new SL.Plot(document.getElementById("impedance-plot"), { unit: "Ω", window: 60 });
  const t0 = performance.now();
  const acknowledged = new Set();
  let source = null;
  let lastMessage = performance.now();
  let ended = false;
  let state = document.getElementById("state").textContent.trim();

  const fmt = (s) => Math.floor(s / 60) + ":" + String(Math.floor(s % 60)).padStart(2, "0");
  const show = (ua) => (microcurrent ? ua + " µA" : (ua / 1000).toFixed(1) + " mA");
  const row = (ch) => document.querySelector('#channel-table tr[data-channel="' + ch + '"]');

  function setButtons() {
    const can = (elId, on) => { const b = document.getElementById(elId); if (b) b.disabled = !on; };
    can("start", state === "planned");
    can("pause", state === "running");
    can("resume", state === "paused");
    can("stop", !ended);
    document.querySelectorAll(".intensity button").forEach((b) => { b.disabled = ended || state !== "running"; });
  }

  function applyStatus(s) {
    state = s.state;
    const el = document.getElementById("state");
    el.textContent = s.state;
    el.className = "state state-" + s.state;
    document.getElementById("elapsed").textContent = fmt(s.elapsed_s);
    document.getElementById("remaining").textContent = fmt(s.remaining_s);
    for (const [ch, ua] of Object.entries(s.target_ua)) {
      const r = row(ch);
      if (r) { r.dataset.targetUa = String(ua); r.querySelector(".target").textContent = show(ua); }
    }
    const ranges = s.intensity_ranges || {};
    document.querySelectorAll("#channel-table tr[data-channel] .allowed").forEach((cell) => {
      const range = ranges[cell.closest("tr").dataset.channel];
      cell.textContent = range && range.max_ua !== null ? "up to " + show(range.max_ua) : "";
    });
    if (ENDED.includes(s.state)) finish(s.state, s.end_reason);
    setButtons();
  }

  function finish(finalState, reason) {
    if (ended) return;
    ended = true;
    if (source) source.close();
    document.getElementById("end-reason").textContent = "Session " + finalState + (reason ? ": " + reason : "") + ". Output is off.";
    const link = document.getElementById("record-link");
    link.textContent = "Open the session record";
    link.classList.add("button", "primary");
    SL.hideBanner();
    setButtons();
  }

  function onTelemetry(m) {
    const t = (performance.now() - t0) / 1000;
    const current = microcurrent ? m.current_ua : m.current_ua / 1000;
    currentPlot.add("channel " + m.channel, t, current);
    impedancePlot.add("channel " + m.channel, t, m.impedance_ohm);
    const r = row(m.channel);
    if (r) {
      r.querySelector(".measured").textContent = show(m.current_ua);
      r.querySelector(".impedance").textContent = m.impedance_ohm + " Ω";
    }
  }

  function connect() {
    source = new EventSource(base + "/stream");
    const seen = () => { lastMessage = performance.now(); SL.hideBanner(); };
    source.addEventListener("status", (e) => { seen(); applyStatus(JSON.parse(e.data)); });
    source.addEventListener("telemetry", (e) => { seen(); onTelemetry(JSON.parse(e.data)); });
    source.addEventListener("state", (e) => {
      seen();
      const m = JSON.parse(e.data);
      state = m.state;
      document.getElementById("state").textContent = m.state;
      if (ENDED.includes(m.state)) finish(m.state, m.reason);
      setButtons();
    });
    source.addEventListener("intensity", (e) => { seen(); const m = JSON.parse(e.data); const r = row(m.channel); if (r && m.to_ua !== undefined) { r.dataset.targetUa = String(m.to_ua); r.querySelector(".target").textContent = show(m.to_ua); } });
    source.onerror = () => {
      if (ended) return;
      SL.showBanner("Connection to the server lost: this screen no longer shows the session. Use the device's own stop if you cannot reconnect.");
    };
  }

  // The stream sends a status every second: two seconds of silence means the link is gone.
  setInterval(() => {
    if (!ended && performance.now() - lastMessage > 2500) {
      SL.showBanner("Connection to the server lost: no news from the session for " + Math.round((performance.now() - lastMessage) / 1000) + " s.");
    }
  }, 500);
  setInterval(() => { currentPlot.draw(); impedancePlot.draw(); }, 250);

  async function act(action) {
    const answer = await SL.api("POST", base + "/" + action);
    const out = document.getElementById("intensity-result");
    if (answer.ok) { applyStatus(answer.data); out.textContent = ""; }
    else { out.className = "error"; out.textContent = action + " refused: " + SL.problemLines(answer.data).join("; "); }
    return answer;
  }

  async function stop() {
    if (ended) return;
    document.getElementById("end-reason").textContent = "Stopping…";
    const answer = await act("emergency-stop");
    if (!answer.ok) {
      document.getElementById("end-reason").textContent = "STOP did not reach the server (" + SL.problemLines(answer.data).join("; ") + "). Use the device's own stop.";
    }
  }

  async function step(channel, direction) {
    const r = row(channel);
    const target = Math.max(0, Number(r.dataset.targetUa) + direction * stepUa);
    const out = document.getElementById("intensity-result");
    const answer = await SL.api("POST", base + "/intensity", { channel: Number(channel), amplitude_ua: target, acknowledged_warnings: [...acknowledged] });
    const warnings = document.getElementById("intensity-warnings");
    warnings.replaceChildren();
    if (answer.ok) {
      // An acknowledgement is for the warning it was ticked for: the engine carries it for that
      // channel from now on, and a warning another channel raises later needs its own tick.
      acknowledged.clear();
      out.className = ""; out.textContent = "Channel " + channel + " target " + show(target) + " approved.";
      applyStatus(answer.data);
      return;
    }
    out.className = "error";
    out.textContent = "Channel " + channel + " to " + show(target) + " refused: " + SL.problemLines(answer.data).join("; ");
    const pending = answer.data && answer.data.verdict ? answer.data.verdict.warnings.filter((w) => !w.acknowledged) : [];
    for (const w of pending) {
      const box = document.createElement("input");
      box.type = "checkbox"; box.id = "live-ack-" + w.code; box.style.width = "auto";
      box.addEventListener("change", () => { if (box.checked) acknowledged.add(w.code); else acknowledged.delete(w.code); });
      const label = document.createElement("label");
      label.htmlFor = box.id; label.style.display = "inline"; label.textContent = " I acknowledge: " + w.message + " (then step again)";
      warnings.append(box, label);
    }
  }

  if (root.dataset.canRun === "true") {
    document.getElementById("stop").addEventListener("click", stop);
    // Escape stops from anywhere on the page, even while typing a note.
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { event.preventDefault(); stop(); }
    }, true);
    document.getElementById("start").addEventListener("click", () => act("start"));
    document.getElementById("pause").addEventListener("click", () => act("pause"));
    document.getElementById("resume").addEventListener("click", () => act("resume"));
    document.querySelectorAll("#channel-table tr[data-channel]").forEach((r) => {
      r.querySelector(".up").addEventListener("click", () => step(r.dataset.channel, +1));
      r.querySelector(".down").addEventListener("click", () => step(r.dataset.channel, -1));
    });
    const noteForm = document.getElementById("note-form");
    noteForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = noteForm.text.value.trim();
      if (!text) return;
      const answer = await SL.api("POST", base + "/live-notes", { text });
      const item = document.createElement("li");
      item.textContent = answer.ok ? new Date().toLocaleTimeString() + " — " + text : "Note not saved: " + SL.problemLines(answer.data).join("; ");
      if (!answer.ok) item.className = "error";
      document.getElementById("notes").append(item);
      if (answer.ok) noteForm.text.value = "";
    });
    SL.keepSignedIn();
  }

  if (ENDED.includes(state)) { finish(state, null); } else { connect(); }
  setButtons();
  const stopButton = document.getElementById("stop");
  if (stopButton && !ended) stopButton.focus();
});
