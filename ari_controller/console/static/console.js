// The console's only script: live calls over server-sent events, the time each call has
// spent in its step, and "select all" on the alert list. Every page works without it.
"use strict";

(function () {
  function duration(seconds) {
    var total = Math.max(0, Math.round(seconds));
    if (total < 60) return total + " s";
    var minutes = Math.floor(total / 60), secs = total % 60;
    if (minutes < 60) return minutes + " min " + String(secs).padStart(2, "0") + " s";
    var hours = Math.floor(minutes / 60);
    return hours + " h " + String(minutes % 60).padStart(2, "0") + " min";
  }

  // The server's clock minus ours, so that times are right on a device whose clock is off.
  var skewMs = 0;

  function tick() {
    var now = Date.now() + skewMs;
    document.querySelectorAll("[data-since]").forEach(function (el) {
      var since = Date.parse(el.getAttribute("data-since"));
      if (!isNaN(since)) el.textContent = duration((now - since) / 1000);
    });
  }

  function cell(label, text) {
    var td = document.createElement("td");
    td.setAttribute("data-label", label);
    if (text !== undefined) td.textContent = text;
    return td;
  }

  function row(call) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-call", call.call);
    tr.setAttribute("data-step", call.step);
    tr.appendChild(cell("Started", call.started));
    tr.appendChild(cell("Number", call.number));
    tr.appendChild(cell("Caller", call.caller));
    tr.appendChild(cell("Route", call.route));
    var step = cell("Step");
    var label = document.createElement("span");
    label.className = call.step === "ended" ? "step step-ended" : "step";
    label.textContent = call.label;
    step.appendChild(label);
    if (call.detail) {
      var detail = document.createElement("span");
      detail.className = "detail";
      detail.textContent = call.detail;
      step.appendChild(document.createTextNode(" "));
      step.appendChild(detail);
    }
    tr.appendChild(step);
    var inStep = cell("In this step");
    var since = document.createElement("span");
    since.setAttribute("data-since", call.since);
    inStep.appendChild(since);
    tr.appendChild(inStep);
    var alert = cell("Alert");
    var link = document.createElement("a");
    link.href = "/console/alerts/" + encodeURIComponent(call.alert);
    link.textContent = "Alert";
    alert.appendChild(link);
    tr.appendChild(alert);
    return tr;
  }

  function showCalls(table, data) {
    skewMs = Date.parse(data.now) - Date.now();
    var body = table.tBodies[0];
    var rows = data.calls.map(row);
    if (!rows.length) {
      var empty = document.createElement("tr");
      empty.className = "empty";
      var td = document.createElement("td");
      td.colSpan = 7;
      td.textContent = "No calls right now.";
      empty.appendChild(td);
      rows = [empty];
    }
    body.replaceChildren.apply(body, rows);
    var count = document.getElementById("live-count");
    if (count) {
      count.textContent = String(data.calls.filter(function (c) { return c.step !== "ended"; }).length);
    }
    tick();
  }

  function follow(table) {
    var status = document.getElementById("live-status");
    if (!window.EventSource || !status) return;
    var source = new EventSource(status.getAttribute("data-stream"));
    source.addEventListener("calls", function (event) {
      showCalls(table, JSON.parse(event.data));
      status.textContent = "Live: updated as calls change.";
    });
    source.addEventListener("open", function () {
      status.textContent = "Live: updated as calls change.";
    });
    source.addEventListener("error", function () {
      // A refused stream (signed out, the session expired) is not tried again by the browser.
      status.textContent = source.readyState === EventSource.CLOSED
        ? "Live updates stopped (signed out?): reload the page."
        : "Connection lost; reconnecting\u2026";
    });
  }

  function selectAll() {
    document.querySelectorAll("[data-select-all]").forEach(function (box) {
      box.hidden = false;
      box.addEventListener("change", function () {
        var form = box.form;
        if (!form) return;
        form.querySelectorAll("input[type=checkbox][name='" + box.getAttribute("data-select-all") + "']")
          .forEach(function (each) { each.checked = box.checked; });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var table = document.getElementById("live-calls");
    if (table) {
      follow(table);
      tick();
      window.setInterval(tick, 1000);
    }
    selectAll();
  });
})();
