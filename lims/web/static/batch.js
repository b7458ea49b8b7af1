// Batch step form: each scan (Enter-terminated) adds a material to the step and the scan field
// keeps the focus for the next one; the server decides whether each may be used.
"use strict";
(function () {
  var scan = document.getElementById("material-scan");
  var list = document.getElementById("scanned");
  if (!scan || !list) return;
  function add(code) {
    var li = document.createElement("li");
    var hidden = document.createElement("input");
    hidden.type = "hidden";
    hidden.name = "material";
    hidden.value = code;
    var text = document.createElement("span");
    text.className = "mono";
    text.textContent = code;
    var drop = document.createElement("button");
    drop.type = "button";
    drop.className = "btn btn-quiet unscan";
    drop.textContent = "remove";
    li.appendChild(hidden);
    li.appendChild(text);
    li.appendChild(document.createTextNode(" "));
    li.appendChild(drop);
    list.appendChild(li);
  }
  scan.addEventListener("keydown", function (e) {
    if (e.key !== "Enter") return;
    e.preventDefault(); // a scan adds a material; it does not submit the step
    var code = scan.value.trim();
    scan.value = "";
    if (code) add(code);
    scan.focus();
  });
  list.addEventListener("click", function (e) {
    if (!e.target.classList.contains("unscan")) return;
    e.target.closest("li").remove();
    scan.focus();
  });
  scan.focus();
})();
