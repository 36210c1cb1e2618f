// Session record: plot the stored telemetry (GET /api/v1/sessions/{id}/telemetry); send a
// correction with its reason, an adverse event, or an entered-in-error mark (each a POST to the
// session's API route), then show the result.
"use strict";
document.addEventListener("DOMContentLoaded", async () => {
  const root = document.getElementById("record");
  const id = root.dataset.sessionId;
  const form = document.getElementById("correction-form");
  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const out = document.getElementById("correction-result");
      const reason = form.reason.value.trim();
      if (!reason) { out.className = "error"; out.textContent = "A correction needs a reason."; form.reason.focus(); return; }
      const answer = await SL.api("POST", "/api/v1/sessions/" + id + "/corrections", {
        reason, notes: form.notes.value.trim() || null, outcome: form.outcome.value.trim() || null,
      });
      if (answer.ok) { window.location.assign("/app/sessions/" + answer.data.id); return; }
      out.className = "error";
      out.textContent = "Not corrected: " + SL.problemLines(answer.data).join("; ");
    });
  }
  const adverse = document.getElementById("adverse-form");
  if (adverse) {
    adverse.addEventListener("submit", async (event) => {
      event.preventDefault();
      const out = document.getElementById("adverse-result");
      const description = adverse.description.value.trim();
      if (!description) { out.className = "error"; out.textContent = "Describe what happened."; adverse.description.focus(); return; }
      const answer = await SL.api("POST", "/api/v1/sessions/" + id + "/adverse-events", {
        description, severity: adverse.severity.value,
      });
      if (answer.ok) { window.location.reload(); return; }
      out.className = "error";
      out.textContent = "Not recorded: " + SL.problemLines(answer.data).join("; ");
    });
  }
  const mark = document.getElementById("error-form");
  if (mark) {
    mark.addEventListener("submit", async (event) => {
      event.preventDefault();
      const out = document.getElementById("error-result");
      const reason = mark.reason.value.trim();
      if (!reason) { out.className = "error"; out.textContent = "Marking a record needs a reason."; mark.reason.focus(); return; }
      const answer = await SL.api("POST", "/api/v1/sessions/" + id + "/entered-in-error", { reason });
      if (answer.ok) { window.location.assign("/app/sessions/" + answer.data.id); return; }
      out.className = "error";
      out.textContent = "Not marked: " + SL.problemLines(answer.data).join("; ");
    });
  }
  const canvas = document.getElementById("record-plot");
  const answer = await SL.api("GET", "/api/v1/sessions/" + id + "/telemetry?max_points=600");
  if (!answer.ok || !answer.data.length) {
    canvas.hidden = true;
    document.getElementById("telemetry-empty").hidden = false;
    return;
  }
  const plot = new SL.Plot(canvas, { unit: "mA" });
  for (const series of answer.data) {
    plot.set("channel " + series.channel, series.t_s.map((t, i) => [t, series.current_ua[i] / 1000]));
  }
  plot.draw();
});
