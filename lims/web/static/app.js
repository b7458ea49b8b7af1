// Small page helpers: confirm destructive forms, stop double submits (gloved double taps).
"use strict";
document.addEventListener("submit", function (e) {
  var form = e.target;
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    e.preventDefault();
    return;
  }
  if (form.method.toLowerCase() === "post") {
    if (form.dataset.sent) { e.preventDefault(); return; }
    form.dataset.sent = "1";
    form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
  }
});
// A page restored from the back-forward cache must accept its forms again.
window.addEventListener("pageshow", function () {
  document.querySelectorAll("form[data-sent]").forEach(function (f) {
    delete f.dataset.sent;
    f.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = false; });
  });
});

// "Tick all" on a list: one tap instead of ninety-six with gloves on.
document.addEventListener("change", function (e) {
  if (!e.target.classList || !e.target.classList.contains("tick-all")) return;
  var form = e.target.closest("form");
  if (!form) return;
  form.querySelectorAll('input[type=checkbox][name=barcodes]').forEach(function (box) {
    box.checked = e.target.checked;
  });
});
