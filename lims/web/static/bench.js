// Bench page: a scan field that keeps focus, keyboard-wedge scans (Enter-terminated) posted to
// /api/scans, clear accepted/refused feedback with a beep, and live updates from the station
// agent's serial scans by polling /api/scans every second.
"use strict";
(function () {
  var root = document.getElementById("bench");
  if (!root) return;
  var station = root.dataset.station;
  var input = document.getElementById("scan");
  var form = document.getElementById("scan-form");
  var result = document.getElementById("last-result");
  var list = document.getElementById("scans");
  var conn = document.getElementById("connection");
  var csrf = document.querySelector("meta[name=csrf-token]").content;
  var lastId = Number(root.dataset.lastId) || 0;
  var mine = {};          // scan_ids sent from this page: already shown and beeped
  var chain = Promise.resolve();
  var audio = null;

  function signInAgain() {
    window.location.href = "/login?ended=expired&next=" + encodeURIComponent(window.location.pathname);
  }

  // --- focus: the scan field owns the keyboard unless another field is in use ---------------
  function otherField(el) {
    return el && el !== input && /^(INPUT|TEXTAREA|SELECT|BUTTON|SUMMARY)$/.test(el.tagName);
  }
  function refocus() {
    if (!otherField(document.activeElement)) input.focus();
  }
  input.addEventListener("blur", function () { setTimeout(refocus, 80); });
  document.addEventListener("click", function (e) {
    if (!e.target.closest("a, button, summary, input, select, textarea")) input.focus();
  });
  window.addEventListener("focus", refocus);

  // --- feedback ---------------------------------------------------------------------------
  function beep(ok) {
    root.dataset.lastBeep = ok ? "accepted" : "refused";
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      var osc = audio.createOscillator();
      var gain = audio.createGain();
      var t = audio.currentTime;
      osc.type = ok ? "sine" : "square";
      osc.frequency.setValueAtTime(ok ? 1320 : 220, t);
      if (!ok) osc.frequency.setValueAtTime(160, t + 0.22);
      gain.gain.setValueAtTime(0.2, t);
      osc.connect(gain);
      gain.connect(audio.destination);
      osc.start(t);
      osc.stop(t + (ok ? 0.12 : 0.5));
    } catch (err) { /* no audio device: the colours still tell */ }
  }
  function show(outcome, text) {
    result.className = "result result-" + outcome;
    result.textContent = text;
  }
  function utc(t) {
    return t ? t.replace("T", " ").replace(/\..*$/, "").replace("Z", "") + " UTC" : "";
  }
  function row(sc) {
    var li = document.createElement("li");
    li.className = "scan scan-" + sc.outcome;
    li.dataset.id = sc.id;
    [["scan-outcome", (sc.outcome || "").toUpperCase()], ["scan-data", sc.data],
     ["scan-msg", sc.message]].forEach(function (p) {
      var span = document.createElement("span");
      span.className = p[0];
      span.textContent = p[1] || "";
      li.appendChild(span);
    });
    var time = document.createElement("time");
    time.textContent = utc(sc.time);
    li.appendChild(time);
    return li;
  }
  function renderScans(scans) {
    list.replaceChildren.apply(list, scans.map(row));
  }
  function renderState(st) {
    if (!st) return;
    var banner = document.getElementById("mode-banner");
    banner.className = "banner mode-" + (st.mode || "none");
    document.getElementById("mode").textContent =
      (st.mode ? st.mode.replace(/_/g, " ") : "no mode").toUpperCase();
    // redacted: another organisation's task runs here; the server sent none of its details.
    document.getElementById("operator").textContent = st.redacted ? "another operator"
      : (st.operator_name || st.operator || "\u2014 scan your badge");
    document.getElementById("target").textContent =
      (st.target || "\u2014") + (st.position ? " at " + st.position : "");
    var settings = [];
    ["lot", "coi", "condition", "reason"].forEach(function (k) {
      if (st[k]) settings.push(k + ": " + st[k]);
    });
    document.getElementById("settings").textContent = settings.join("  ");
    document.getElementById("prompt").textContent = st.prompt || "";
  }

  // --- sending scans: one at a time, in the order scanned; a retry reuses its scan_id -------
  function newScanId() {
    var bytes = new Uint8Array(12);
    window.crypto.getRandomValues(bytes);
    return "web-" + Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }
  function post(body, attempt) {
    return fetch("/api/scans", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    }).then(function (r) {
      if (r.status === 401) { signInAgain(); throw new Error("signed out"); }
      if ((r.status >= 500 || r.status === 409) && attempt < 3) {
        return new Promise(function (ok) { setTimeout(ok, 400 * (attempt + 1)); })
          .then(function () { return post(body, attempt + 1); });
      }
      return r.json().then(function (j) { return { status: r.status, body: j }; });
    });
  }
  function send(data) {
    var body = { station: station, data: data, scan_id: newScanId(), device: "keyboard-wedge" };
    mine[body.scan_id] = true;
    show("pending", "Sending " + data + " \u2026");
    return post(body, 0).then(function (res) {
      var j = res.body || {};
      if (res.status >= 400) {
        show("error", "NOT RECORDED: " + (j.message || ("error " + res.status)));
        beep(false);
        return;
      }
      var ok = j.outcome === "accepted";
      show(j.outcome || "error", (ok ? "\u2714 " : "\u2716 ") + (j.message || j.outcome));
      beep(ok);
      renderState(j.station_state);
      return poll();
    }).catch(function (err) {
      if (err && err.message === "signed out") return;
      show("error", "NOT SENT: the server did not answer. Scan " + data + " again.");
      beep(false);
    });
  }
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var data = input.value;
    input.value = "";
    if (!data.trim()) return;
    chain = chain.then(function () { return send(data.trim()); });
  });

  // --- live updates: scans from the station agent (serial scanners) --------------------------
  var polling = false;
  function getJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { "X-LIMS-Poll": "1" } })
      .then(function (r) {
        if (r.status === 401) { signInAgain(); throw new Error("signed out"); }
        if (!r.ok) throw new Error("status " + r.status);
        return r.json();
      });
  }
  function poll() {
    if (polling) return Promise.resolve();
    polling = true;
    return getJson(root.dataset.scansUrl).then(function (j) {
      var scans = j.scans || [];
      scans.filter(function (sc) { return sc.id > lastId; }).reverse().forEach(function (sc) {
        if (!mine[sc.scan_id]) {
          var ok = sc.outcome === "accepted";
          show(sc.outcome, (ok ? "\u2714 " : "\u2716 ") + sc.message);
          beep(ok);
        }
      });
      if (scans.length) lastId = Math.max(lastId, scans[0].id);
      renderScans(scans);
      return getJson(root.dataset.stateUrl);
    }).then(function (st) {
      renderState(st);
      conn.hidden = true;
    }).catch(function (err) {
      if (err && err.message === "signed out") return;
      conn.hidden = false;
      conn.textContent = "No connection to the server: live updates paused (" + err.message + ")";
    }).then(function () { polling = false; });
  }
  setInterval(poll, 1000);
  refocus();
})();
