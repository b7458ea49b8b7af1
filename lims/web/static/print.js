// Label pages: a new stock shows its preview at once; the print queue follows the printers
// live (polls a small JSON feed, reloads the list only when a job moved, never under a
// half-typed reason).
(function () {
  "use strict";

  document.querySelectorAll("select[data-autosubmit]").forEach(function (sel) {
    sel.addEventListener("change", function () { sel.form.submit(); });
  });

  var root = document.getElementById("queue-printers");
  if (!root) return;
  var every = Number(root.dataset.pollMs || 3000);

  function busy() {
    // Someone typing a reason or a count, or with a form open: leave the list alone.
    var el = document.activeElement;
    if (el && root.contains(el) && /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName)) return true;
    return Array.prototype.some.call(
      root.querySelectorAll("input[type=text], input:not([type]), input[type=number], textarea"),
      function (f) { return f.value.trim() !== ""; }
    );
  }

  function showStatus(name, st) {
    var el = root.querySelector('[data-printer-status="' + CSS.escape(name) + '"]');
    if (!el) return;
    // The server words it with its age ("paper out, 2 min ago", "no answer since 11:02 UTC",
    // "not asked for 10 min"): an old "ready" is shown as unknown, never as ready.
    el.textContent = !st ? "no status yet" : st.text;
    el.dataset.state = !st ? "none" : st.state;
    var pill = !st ? "" : { ready: "pill-pass", unknown: "pill-missing" }[st.state] || "pill-fail";
    el.className = "pill printer-status " + pill;
    if (st) {
      el.title = "last asked (~HS) at " + st.checked_at.replace("T", " ").replace("Z", " UTC") +
        "; this state since " + st.since.replace("T", " ").replace("Z", " UTC");
    }
  }

  function reload() {
    return fetch(window.location.pathname, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html || busy()) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("queue-printers");
        if (!fresh) return;
        root.innerHTML = fresh.innerHTML;
        root.dataset.version = fresh.dataset.version;
      });
  }

  function poll() {
    fetch(root.dataset.feed, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        var json = (r.headers.get("Content-Type") || "").indexOf("json") >= 0;
        return r.ok && json ? r.json() : null;
      })
      .then(function (j) {
        if (!j) return;
        j.printers.forEach(function (p) { showStatus(p.name, p.status); });
        root.dataset.polled = String(Number(root.dataset.polled || 0) + 1);
        if (j.version !== root.dataset.version && !busy()) return reload();
      })
      .catch(function () { /* the server is away for a moment: the next poll tries again */ })
      .then(function () { window.setTimeout(poll, every); });
  }
  window.setTimeout(poll, every);
})();
