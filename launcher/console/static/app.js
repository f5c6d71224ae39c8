// The console's only script: the secret picker, the typed-name delete, live logs, and progress on run.
// Plain JS, served by the server itself (the Content-Security-Policy allows no other source and no inline code).
"use strict";

function insertAtCursor(area, text) {
  const start = area.selectionStart ?? area.value.length;
  const end = area.selectionEnd ?? start;
  area.value = area.value.slice(0, start) + text + area.value.slice(end);
  area.selectionStart = area.selectionEnd = start + text.length;
  area.focus();
}

function reference(kind, key) {
  if (kind === "runpod") return "{{ RUNPOD_SECRET_" + key + " }}";
  if (kind === "file") return "secret:" + key + ":/run/secrets/" + key;
  return "secret:" + key;
}

function setUpPicker() {
  const button = document.getElementById("picker-insert");
  if (!button) return;
  button.addEventListener("click", () => {
    const key = document.getElementById("picker-secret").value;
    const kind = document.getElementById("picker-kind").value;
    if (key) insertAtCursor(document.getElementById("yaml"), reference(kind, key));
  });
}

function setUpDelete() {
  const form = document.getElementById("delete-secret");
  if (!form) return;
  const input = document.getElementById("confirm");
  const button = document.getElementById("delete");
  input.addEventListener("input", () => { button.disabled = input.value.trim() !== form.dataset.name; });
}

async function followLogs() {
  const pre = document.getElementById("logs");
  if (!pre) return;
  const response = await fetch("/v2/jobs/" + encodeURIComponent(pre.dataset.job) + "/logs?follow=true",
                               { credentials: "same-origin" });
  if (!response.ok || !response.body) {
    pre.textContent = "(cannot read the logs: " + response.status + ")";
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pre.textContent += decoder.decode(value, { stream: true });
    pre.scrollTop = pre.scrollHeight;
  }
  pre.textContent += decoder.decode();
  pre.dataset.ended = "1";
}

function setUpRun() {
  const form = document.getElementById("run-form");
  if (!form) return;
  form.addEventListener("submit", () => {
    const progress = document.getElementById("run-progress");
    progress.hidden = false;
    document.getElementById("run").disabled = true;
    // while the form is posted, show what the start is doing (an image pull's latest line)
    const ticket = document.getElementById("run-ticket").value;
    const poll = async () => {
      try {
        const response = await fetch("/jobs/progress/" + encodeURIComponent(ticket), { credentials: "same-origin" });
        const line = response.ok ? (await response.json()).line : "";
        if (line) progress.textContent = line;
      } catch (e) { /* the page is being replaced */ }
      setTimeout(poll, 300);
    };
    setTimeout(poll, 300);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setUpPicker();
  setUpDelete();
  setUpRun();
  followLogs();
});
