// Analyst overview: sessions per month and modality from GET /api/v1/analytics/summary, drawn as
// grouped bars with the same figures in a table. Without the analytics service the page says so.
"use strict";
document.addEventListener("DOMContentLoaded", async () => {
  const status = document.getElementById("overview-status");
  const canvas = document.getElementById("overview-chart");
  const table = document.getElementById("overview-table");
  const modalities = [...table.tHead.rows[0].cells].slice(1).map((c) => c.textContent);
  const answer = await SL.api("GET", "/api/v1/analytics/summary?group_by=month,modality");
  if (answer.status === 404) {
    status.textContent = "The analytics service is not available on this server: no chart and no exports.";
    status.id = "overview-status"; status.dataset.state = "unavailable";
    canvas.hidden = true;
    document.getElementById("exports").hidden = true;
    return;
  }
  if (!answer.ok) {
    status.className = "error"; status.dataset.state = "error";
    status.textContent = "The summary could not be loaded: " + SL.problemLines(answer.data).join("; ");
    canvas.hidden = true;
    return;
  }
  const months = new Map();
  for (const row of answer.data.rows) {
    const month = String(row.group.period_start || row.group.month || "").slice(0, 7);
    if (!months.has(month)) months.set(month, {});
    months.get(month)[row.group.modality] = row.session_count;
  }
  const ordered = [...months.keys()].sort();
  if (!ordered.length) {
    status.textContent = "No session recorded yet.";
    status.dataset.state = "empty";
    canvas.hidden = true;
    return;
  }
  status.textContent = ordered.length + " month(s) of sessions.";
  status.dataset.state = "loaded";
  const body = table.tBodies[0];
  for (const month of ordered) {
    const r = body.insertRow();
    r.insertCell().textContent = month;
    for (const m of modalities) r.insertCell().textContent = String(months.get(month)[m] || 0);
  }
  table.hidden = false;
  const g = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, left = 50, bottom = 40, top = 20;
  const max = Math.max(1, ...ordered.flatMap((m) => modalities.map((k) => months.get(m)[k] || 0)));
  const colours = ["#0b5cad", "#c2410c"];
  const slot = (w - left - 20) / ordered.length;
  const bar = Math.min(40, (slot - 10) / modalities.length);
  g.font = "14px system-ui, sans-serif";
  g.fillStyle = "#5b6470";
  for (let i = 0; i <= 4; i++) {
    const v = Math.round((max * i) / 4);
    g.fillText(String(v), 8, h - bottom - (v / max) * (h - top - bottom) + 4);
  }
  ordered.forEach((month, i) => {
    modalities.forEach((m, j) => {
      const v = months.get(month)[m] || 0;
      const height = (v / max) * (h - top - bottom);
      g.fillStyle = colours[j % colours.length];
      g.fillRect(left + i * slot + j * bar + 5, h - bottom - height, bar - 2, height);
    });
    g.fillStyle = "#1b1f24";
    g.fillText(month, left + i * slot + 5, h - bottom + 18);
  });
  modalities.forEach((m, j) => { g.fillStyle = colours[j % colours.length]; g.fillText(m, w - 160, top + 16 * j + 10); });
  canvas.dataset.bars = String(ordered.length * modalities.length);
});
