// Bench page: one scan field that keeps the keyboard (Enter or Tab ends a scan), scans posted to
// /api/scans in the order scanned, refusals that stay on screen until acknowledged, a sound for
// accepted / refused / stop, live updates of the station agent's scans (polled every second),
// and a lock screen in the page when the session ends: a badge scan unlocks it, so no scan can
// ever land in a sign-in form.
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
  var lock = document.getElementById("lock");
  var lockResult = document.getElementById("lock-result");
  var refusals = document.getElementById("refusals");
  var refusalList = document.getElementById("refusal-list");
  var stopBox = document.getElementById("stop");
  var csrfMeta = document.querySelector("meta[name=csrf-token]");
  var csrf = csrfMeta ? csrfMeta.content : "";
  var lastId = Number(root.dataset.lastId) || 0;
  var mine = {};          // scan_ids sent from this page: already shown and sounded
  var chain = Promise.resolve();
  var audio = null;
  var locked = root.dataset.locked === "1";
  var stopped = null;     // the station's stop (COI mismatch) while it lasts
  var SIGNED_OUT = "signed out";

  // --- focus: the scan field owns the keyboard; only another text field may take it ---------
  function typingElsewhere(el) {
    if (!el || el === input) return false;
    if (el.tagName === "TEXTAREA" || el.tagName === "SELECT") return true;
    return el.tagName === "INPUT" && !/^(button|submit|reset|checkbox|radio)$/i.test(el.type);
  }
  function refocus() {
    if (!typingElsewhere(document.activeElement)) input.focus();
  }
  // A click on a link or button (Command codes, Acknowledge) hands the focus straight back.
  input.addEventListener("blur", function () { setTimeout(refocus, 0); });
  document.addEventListener("click", function () { setTimeout(refocus, 0); });
  window.addEventListener("focus", refocus);
  // A key typed while nothing holds the focus goes to the scan field, not lost.
  document.addEventListener("keydown", function (e) {
    if (document.activeElement !== input && !typingElsewhere(document.activeElement) &&
        !e.ctrlKey && !e.metaKey && !e.altKey) {
      input.focus();
    }
  }, true);
  // A scanner with a Tab suffix: Tab ends the scan like Enter, and the focus stays here.
  input.addEventListener("keydown", function (e) {
    if (e.key === "Tab" && !e.shiftKey) {
      e.preventDefault();
      submitScan();
    }
  });

  // --- sounds: short Web Audio tones, one pattern per outcome (no sound files) --------------
  var TONES = {
    accepted: [["sine", 1320, 0, 0.12]],
    refused: [["square", 220, 0, 0.22], ["square", 160, 0.22, 0.3]],
    stop: [["sawtooth", 880, 0, 0.18], ["sawtooth", 440, 0.2, 0.18],
           ["sawtooth", 880, 0.4, 0.18], ["sawtooth", 440, 0.6, 0.18],
           ["sawtooth", 880, 0.8, 0.4]],
  };
  function sound(kind) {
    root.dataset.lastSound = kind;
    root.dataset.lastBeep = kind;
    // The latest sounds, oldest first: what a person at the bench heard, in order.
    root.dataset.soundLog = ((root.dataset.soundLog ? root.dataset.soundLog + " " : "") + kind)
      .split(" ").slice(-20).join(" ");
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      if (audio.state === "suspended") audio.resume();
      var t0 = audio.currentTime;
      TONES[kind].forEach(function (tone) {
        var osc = audio.createOscillator();
        var gain = audio.createGain();
        osc.type = tone[0];
        osc.frequency.setValueAtTime(tone[1], t0 + tone[2]);
        gain.gain.setValueAtTime(0.2, t0 + tone[2]);
        osc.connect(gain);
        gain.connect(audio.destination);
        osc.start(t0 + tone[2]);
        osc.stop(t0 + tone[2] + tone[3]);
      });
      root.dataset.audio = "web-audio";
    } catch (err) {
      root.dataset.audio = "unavailable";  // no audio device: the colours still tell
    }
  }
  function isStop(j) {
    return j.code === "coi_mismatch" || j.code === "station_stopped" || j.station_stopped === true;
  }
  function soundFor(j) {
    if (j.outcome === "accepted") sound("accepted");
    else sound(isStop(j) ? "stop" : "refused");
  }

  // --- what the page shows --------------------------------------------------------------------
  function show(outcome, text) {
    if (!result) return;
    result.className = "result result-" + outcome;
    result.textContent = text;
  }
  function utc(t) {
    return t ? t.replace("T", " ").replace(/\..*$/, "").replace("Z", "") + " UTC" : "";
  }
  function span(cls, text) {
    var s = document.createElement("span");
    s.className = cls;
    s.textContent = text || "";
    return s;
  }
  function row(sc) {
    var li = document.createElement("li");
    li.className = "scan scan-" + sc.outcome;
    li.dataset.id = sc.id;
    li.appendChild(span("scan-outcome", (sc.outcome || "").toUpperCase()));
    li.appendChild(span("scan-data", sc.data));
    li.appendChild(span("scan-msg", sc.message));
    var time = document.createElement("time");
    time.textContent = utc(sc.time);
    li.appendChild(time);
    return li;
  }
  function renderScans(scans) {
    if (list) list.replaceChildren.apply(list, scans.map(row));
  }
  function renderState(st) {
    if (!st || !document.getElementById("mode-banner")) return;
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
    renderStop(st.stopped ? st.prompt : null);
  }
  function renderStop(text) {
    stopped = text;
    if (!stopBox) return;
    stopBox.hidden = !text;
    document.getElementById("stop-text").textContent = text || "";
    root.dataset.stopped = text ? "1" : "0";
    if (!text) {
      // Released by a supervisor: the stop's refusals are answered.
      refusalList.querySelectorAll("li.refusal-stop").forEach(function (li) { li.remove(); });
      updateRefusals();
    }
  }

  // --- refusals stay until acknowledged (a click, CMD:ACK; a stop needs a supervisor too) ---
  function updateRefusals() {
    if (!refusals) return;
    var n = refusalList.children.length;
    refusals.hidden = n === 0;
    root.dataset.refusals = String(n);
  }
  function postAck(body) {
    // The station keeps what is acknowledged, so a reload shows only what still waits.
    if (!root.dataset.ackUrl) return;
    fetch(root.dataset.ackUrl, {
      method: "POST",
      credentials: "same-origin",
      redirect: "manual",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    }).catch(function () { /* shown again after a reload: acknowledged again then */ });
  }
  function addRefusal(data, message, stop, scanId, when) {
    if (!refusalList) return;
    var li = document.createElement("li");
    li.className = "refusal" + (stop ? " refusal-stop" : "");
    if (scanId) li.dataset.scan = String(scanId);
    var text = document.createElement("div");
    var mark = stop ? (/STOP/.test(message) ? "" : "STOP: ") : "\u2716 ";
    text.appendChild(span("refusal-msg", mark + message));
    text.appendChild(span("refusal-data", data + " \u00b7 " + utc(when || new Date().toISOString())));
    li.appendChild(text);
    var ok = document.createElement("button");
    ok.type = "button";
    ok.className = "btn";
    if (stop) {
      ok.textContent = "Needs CMD:ACK + QA badge";
      ok.disabled = true;
    } else {
      ok.textContent = "OK, seen";
      ok.addEventListener("click", function () {
        li.remove();
        updateRefusals();
        if (scanId) postAck({ scan_id: scanId });
        refocus();
      });
    }
    li.appendChild(ok);
    refusalList.insertBefore(li, refusalList.firstChild);
    updateRefusals();
  }
  function acknowledgeAll(done) {
    // done: the server has it already (a CMD:ACK scan); else tell it (the button).
    if (!refusalList) return;
    refusalList.querySelectorAll("li.refusal:not(.refusal-stop)").forEach(function (li) {
      li.remove();
    });
    updateRefusals();
    if (!done) postAck({});
  }
  var ackAll = document.getElementById("ack-all");
  if (ackAll) ackAll.addEventListener("click", function () { acknowledgeAll(false); refocus(); });
  function isAck(j) {
    return j.outcome === "accepted" && j.resolved && j.resolved.kind === "command" &&
      j.resolved.ref === "ACK";
  }
  function took(j, data) {
    // One answer to a scan, whether sent from here or by the station agent.
    var ok = j.outcome === "accepted";
    show(ok ? "accepted" : (j.outcome || "error"), (ok ? "\u2714 " : "\u2716 ") +
      (j.message || j.outcome));
    soundFor(j);
    if (j.outcome === "refused") addRefusal(data, j.message || j.code, isStop(j), j.id, j.time);
    if (isAck(j) && !stopped) acknowledgeAll(true);
  }

  // --- the lock screen ------------------------------------------------------------------------
  function lockPage(why) {
    if (!lock) return;
    if (!locked) sound("refused");
    locked = true;
    root.dataset.locked = "1";
    lock.hidden = false;
    if (why) lockSays(why, true);
    refocus();
  }
  function lockSays(text, bad) {
    lockResult.textContent = text;
    lockResult.className = "lock-result" + (bad ? " refused" : "");
  }
  function unlock(data) {
    lockSays("Checking the badge \u2026", false);
    return fetch(root.dataset.resumeUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ badge: data }),
    }).then(function (r) {
      return r.json().then(function (j) { return { status: r.status, body: j }; });
    }).then(function (res) {
      var j = res.body || {};
      if (res.status !== 200) {
        lockSays(j.message || ("refused (" + res.status + ")"), true);
        sound("refused");
        return;
      }
      sound("accepted");
      if (!result) {
        // The page was loaded locked: load the bench itself now that the session is back.
        window.location.reload();
        return;
      }
      csrf = j.csrf_token;
      if (csrfMeta) csrfMeta.content = csrf;
      document.querySelectorAll("input[name=csrf_token]").forEach(function (f) {
        f.value = csrf;
      });
      var name = document.querySelector(".who-name");
      if (name) name.textContent = j.full_name;
      locked = false;
      root.dataset.locked = "0";
      lock.hidden = true;
      show("accepted", "\u2714 " + j.message);
      // The badge also signs its holder in at the station, as any badge scan does.
      return send(data);
    }).catch(function () {
      lockSays("NOT SENT: the server did not answer. Scan your badge again.", true);
      sound("refused");
    });
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
      redirect: "manual",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    }).then(function (r) {
      // 401, or any redirect (never followed: it could only lead to a sign-in form).
      if (r.status === 401 || r.type === "opaqueredirect") throw new Error(SIGNED_OUT);
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
        var text = "NOT RECORDED: " + (j.message || ("error " + res.status));
        show("error", text);
        sound("refused");
        addRefusal(data, text, false);
        return;
      }
      took(j, data);
      renderState(j.station_state);
      return poll();
    }).catch(function (err) {
      if (err && err.message === SIGNED_OUT) {
        var why = "NOT RECORDED: " + data + " (the session had ended). Scan your badge, then " +
          "scan " + data + " again.";
        show("error", why);
        addRefusal(data, why, false);
        lockPage(why);
        return;
      }
      show("error", "NOT SENT: the server did not answer. Scan " + data + " again.");
      sound("refused");
      addRefusal(data, "NOT SENT: the server did not answer; scan it again", false);
    });
  }
  function submitScan() {
    var data = input.value.trim();
    input.value = "";
    if (!data) return;
    chain = chain.then(function () { return locked ? unlock(data) : send(data); });
  }
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    submitScan();
  });

  // --- live updates: scans from the station agent (serial scanners) --------------------------
  var polling = false;
  function getJson(url) {
    return fetch(url, {
      credentials: "same-origin",
      redirect: "manual",
      headers: { "X-LIMS-Poll": "1" },
    }).then(function (r) {
      if (r.status === 401 || r.type === "opaqueredirect") throw new Error(SIGNED_OUT);
      if (!r.ok) throw new Error("status " + r.status);
      return r.json();
    });
  }
  function poll() {
    if (polling || locked || !list) return Promise.resolve();
    polling = true;
    return getJson(root.dataset.scansUrl).then(function (j) {
      var scans = j.scans || [];
      scans.filter(function (sc) { return sc.id > lastId; }).reverse().forEach(function (sc) {
        if (!mine[sc.scan_id]) took(sc, sc.data);
      });
      if (scans.length) lastId = Math.max(lastId, scans[0].id);
      renderScans(scans);
      return getJson(root.dataset.stateUrl);
    }).then(function (st) {
      renderState(st);
      conn.hidden = true;
    }).catch(function (err) {
      if (err && err.message === SIGNED_OUT) {
        lockPage("Scans are not recorded until a badge unlocks this page.");
        return;
      }
      conn.hidden = false;
      conn.textContent = "No connection to the server: live updates paused (" + err.message + ")";
    }).then(function () { polling = false; });
  }
  // The refusals still waiting when the page was drawn (kept with the station), oldest first.
  try {
    JSON.parse(root.dataset.refusals || "[]").forEach(function (r) {
      addRefusal(r.data, r.message || r.code, r.stop, r.id, r.time);
    });
  } catch (e) { /* an old page without the list: nothing to restore */ }
  if (list) {
    setInterval(poll, 1000);
    renderStop(stopBox && !stopBox.hidden ? document.getElementById("stop-text").textContent
      : null);
  }
  refocus();
})();
