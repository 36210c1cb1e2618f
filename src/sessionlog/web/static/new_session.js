// New session: build the plan from the form, ask the limits engine (POST /api/v1/limits/check)
// as the practitioner types, show the verdict, the dose figures and the warnings that need a tick,
// and create the session (POST /api/v1/sessions/live) with the ticked warnings recorded.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("session-form");
  const channels = document.getElementById("channels");
  const template = document.getElementById("channel-template");
  const verdictBox = document.getElementById("verdict");
  const warningsBox = document.getElementById("warnings");
  const doseTable = document.getElementById("dose");
  const doseTotal = document.getElementById("dose-total");
  const createButton = document.getElementById("create-session");
  const createResult = document.getElementById("create-result");
  const programs = JSON.parse(document.getElementById("programs-data").textContent);
  const acknowledged = new Set();
  let checkTimer = null;
  let checkSeq = 0;
  let lastApproved = false;

  function number(input) {
    const text = input.value.trim();
    return text === "" ? null : Number(text);
  }

  function renumber() {
    [...channels.children].forEach((fieldset, i) => {
      fieldset.dataset.channel = String(i + 1);
      fieldset.querySelectorAll(".ch-number").forEach((span) => { span.textContent = String(i + 1); });
      // Labels point at their inputs by id, so each control has an accessible name.
      fieldset.querySelectorAll("input, select").forEach((control) => {
        const key = control.className.replace("ch-", "");
        control.id = "ch" + (i + 1) + "-" + key;
        const label = control.parentElement.querySelector("label");
        if (label) label.htmlFor = control.id;
      });
      fieldset.querySelector(".ch-remove").hidden = channels.children.length === 1;
    });
  }

  function addChannel(values) {
    const fieldset = template.content.firstElementChild.cloneNode(true);
    const unit = form.modality.value === "ems" ? "ma" : "ua";
    fieldset.querySelector(".ch-unit").value = values && values.unit ? values.unit : unit;
    fieldset.querySelector(".ch-amplitude").value = values && values.amplitude !== undefined ? values.amplitude : (unit === "ma" ? 20 : 300);
    if (values) {
      if (values.pulse_width_us !== undefined) fieldset.querySelector(".ch-pulse").value = values.pulse_width_us;
      if (values.frequency_hz !== undefined) fieldset.querySelector(".ch-frequency").value = values.frequency_hz;
      if (values.ramp_up_s !== undefined) fieldset.querySelector(".ch-ramp-up").value = values.ramp_up_s;
      if (values.ramp_down_s !== undefined) fieldset.querySelector(".ch-ramp-down").value = values.ramp_down_s;
      if (values.waveform) fieldset.querySelector(".ch-waveform").value = values.waveform;
      if (values.phase_type) fieldset.querySelector(".ch-phase").value = values.phase_type;
    }
    fieldset.querySelector(".ch-remove").addEventListener("click", () => {
      fieldset.remove(); renumber(); scheduleCheck();
    });
    channels.append(fieldset);
    renumber();
  }

  // The plan exactly as the API takes it; the amplitude goes with the unit the practitioner chose.
  function plan() {
    const side = form.side.value;
    const programOption = form.program.selectedOptions[0];
    const result = {
      modality: form.modality.value,
      duration_s: Math.round((number(form.duration_min) || 0) * 60),
      electrode: { body_site: form.body_site.value, area_cm2: number(form.area_cm2) },
      channels: [...channels.children].map((fieldset, i) => {
        const unit = fieldset.querySelector(".ch-unit").value;
        const channel = {
          channel: i + 1,
          pulse_width_us: number(fieldset.querySelector(".ch-pulse")),
          frequency_hz: number(fieldset.querySelector(".ch-frequency")),
          ramp_up_s: number(fieldset.querySelector(".ch-ramp-up")) || 0,
          ramp_down_s: number(fieldset.querySelector(".ch-ramp-down")) || 0,
          waveform: fieldset.querySelector(".ch-waveform").value,
          phase_type: fieldset.querySelector(".ch-phase").value,
        };
        channel["amplitude_" + unit] = number(fieldset.querySelector(".ch-amplitude"));
        return channel;
      }),
    };
    if (side) result.electrode.side = side;
    if (form.program.value) result.program_name = programOption.textContent.replace(/ \(.*\)$/, "");
    return result;
  }

  function scheduleCheck() {
    clearTimeout(checkTimer);
    lastApproved = false;
    createButton.disabled = true;
    checkTimer = setTimeout(check, 250);
  }

  async function check() {
    const seq = ++checkSeq;
    const body = { plan: plan(), acknowledged_warnings: [...acknowledged] };
    if (form.client_id.value) body.client_id = Number(form.client_id.value);
    if (form.device_id.value) body.device_id = Number(form.device_id.value);
    const answer = await SL.api("POST", "/api/v1/limits/check", body);
    if (seq !== checkSeq) return; // a newer check is on its way
    if (!answer.ok) {
      showRefusal(SL.problemLines(answer.data), "The plan is not complete or not valid:");
      return;
    }
    showVerdict(answer.data);
  }

  function showRefusal(lines, heading) {
    verdictBox.replaceChildren();
    const p = document.createElement("p");
    p.className = "verdict-refused";
    p.id = "verdict-state";
    p.textContent = heading;
    verdictBox.append(p);
    const reasons = document.createElement("div");
    reasons.id = "verdict-reasons";
    SL.renderLines(reasons, lines, "error");
    verdictBox.append(reasons);
    doseTable.hidden = true;
    doseTotal.textContent = "";
    warningsBox.replaceChildren();
    lastApproved = false;
    updateCreate();
  }

  function showVerdict(verdict) {
    const blocking = verdict.violations.map((v) => v.message + " [" + v.layer + (v.source ? "; " + v.source : "") + "]");
    if (verdict.violations.length) {
      showRefusal(blocking, "Refused by the limits engine:");
    } else {
      verdictBox.replaceChildren();
      const p = document.createElement("p");
      p.id = "verdict-state";
      const pending = verdict.warnings.filter((w) => !w.acknowledged);
      p.className = pending.length ? "warning" : "verdict-ok";
      p.textContent = pending.length ? "Allowed once the warnings below are acknowledged." : "Allowed by every limits layer (" + verdict.layers.join(", ") + ").";
      verdictBox.append(p);
      for (const [ch, range] of Object.entries(verdict.amplitude_ranges || {})) {
        if (range.max_ua === null) continue;
        const line = document.createElement("p");
        line.className = "amplitude-range";
        line.textContent = "Channel " + ch + ": intensity may be raised up to " + (range.max_ua / 1000).toFixed(range.max_ua % 1000 ? 3 : 1) + " mA during the session without a warning.";
        verdictBox.append(line);
      }
      lastApproved = verdict.approved;
    }
    renderWarnings(verdict.warnings);
    renderDose(verdict.dose);
    updateCreate();
  }

  function renderWarnings(warnings) {
    warningsBox.replaceChildren();
    for (const w of warnings) {
      const id = "ack-" + w.code;
      const wrapper = document.createElement("div");
      wrapper.className = "warning";
      const box = document.createElement("input");
      box.type = "checkbox"; box.id = id; box.checked = acknowledged.has(w.code); box.style.width = "auto";
      box.addEventListener("change", () => {
        if (box.checked) acknowledged.add(w.code); else acknowledged.delete(w.code);
        scheduleCheck();
      });
      const label = document.createElement("label");
      label.htmlFor = id;
      label.textContent = " I acknowledge: " + w.message;
      label.style.display = "inline";
      wrapper.append(box, label);
      warningsBox.append(wrapper);
    }
  }

  function renderDose(dose) {
    const body = doseTable.tBodies[0];
    body.replaceChildren();
    for (const ch of dose.channels) {
      const row = body.insertRow();
      for (const value of [ch.channel, ch.phase_charge_uc.toFixed(3), (ch.rms_current_ua / 1000).toFixed(2), ch.pulse_energy_mj.toFixed(3), ch.total_charge_uc.toFixed(0)]) {
        row.insertCell().textContent = String(value);
      }
    }
    doseTable.hidden = false;
    doseTotal.id = "dose-total";
    doseTotal.textContent = "Highest current density " + dose.max_current_density_ma_per_cm2.toFixed(3) + " mA/cm² · power density " + dose.max_power_density_w_per_cm2.toFixed(4) + " W/cm² · total charge " + dose.total_charge_uc.toFixed(0) + " µC · on-time " + dose.on_time_s.toFixed(0) + " s";
  }

  function updateCreate() {
    createButton.disabled = !(lastApproved && form.client_id.value && form.device_id.value);
  }

  function showScreening() {
    const option = form.client_id.selectedOptions[0];
    const list = option ? option.dataset.contraindications : "";
    document.getElementById("client-screening").textContent = list ? "Contraindications on record: " + list : (form.client_id.value ? "No contraindication on record." : "");
  }

  form.program.addEventListener("change", () => {
    const chosen = programs.find((p) => String(p.id) === form.program.value);
    if (!chosen) { scheduleCheck(); return; }
    form.modality.value = chosen.modality;
    form.duration_min.value = String(chosen.duration_s / 60);
    channels.replaceChildren();
    for (const ch of chosen.channels) {
      const values = Object.assign({}, ch);
      if (chosen.modality === "ems") { values.unit = "ma"; values.amplitude = ch.amplitude_ua / 1000; }
      else { values.unit = "ua"; values.amplitude = ch.amplitude_ua; }
      addChannel(values);
    }
    scheduleCheck();
  });
  form.client_id.addEventListener("change", showScreening);
  form.addEventListener("input", scheduleCheck);
  form.addEventListener("change", scheduleCheck);
  document.getElementById("add-channel").addEventListener("click", () => { addChannel(); scheduleCheck(); });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (createButton.disabled) return;
    createButton.disabled = true;
    createResult.textContent = "Creating…";
    const body = {
      client_id: Number(form.client_id.value),
      device_id: Number(form.device_id.value),
      practitioner_id: Number(form.dataset.practitionerId),
      plan: plan(),
      acknowledged_warnings: [...acknowledged],
    };
    if (form.program.value) body.program_id = Number(form.program.value);
    const answer = await SL.api("POST", "/api/v1/sessions/live", body);
    if (answer.ok) {
      window.location.assign("/app/sessions/" + answer.data.session_id + "/live");
      return;
    }
    createResult.className = "error";
    createResult.textContent = "Not created: " + SL.problemLines(answer.data).join("; ");
    updateCreate();
  });

  addChannel();
  showScreening();
  scheduleCheck();
});
