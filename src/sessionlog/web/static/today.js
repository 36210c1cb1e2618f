// Today page: connect a device through POST /api/v1/connections, then reload to list it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("connect-form");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = document.getElementById("connect-result");
    result.textContent = "Connecting…";
    const answer = await SL.api("POST", "/api/v1/connections", {
      driver: form.driver.value.trim(),
      url: form.url.value.trim(),
    });
    if (answer.ok) {
      result.textContent = "Connected device #" + answer.data.device.id + ".";
      window.location.reload();
    } else {
      result.className = "error";
      result.textContent = "Not connected: " + SL.problemLines(answer.data).join("; ");
    }
  });
});
