// Paddock's portal script: progressive enhancement only. Every page works without it;
// with it, identifiers get working copy buttons, times stay relative, fields explain
// what is wrong as soon as they lose focus, and running operations update live from
// the server's event streams (the htmx SSE extension delivers the events; we draw them).
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // --- polite announcements for screen readers ------------------------------------
  function announce(text) {
    var region = document.getElementById("announce");
    if (region) { region.textContent = ""; setTimeout(function () { region.textContent = text; }, 50); }
  }

  // --- copy buttons ---------------------------------------------------------------
  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("button.copy");
    if (!button) return;
    var text = button.getAttribute("data-copy") || "";
    var done = function () {
      button.setAttribute("data-copied", "");
      var label = button.textContent;
      button.textContent = "Copied";
      announce("Copied to the clipboard");
      setTimeout(function () { button.textContent = label; button.removeAttribute("data-copied"); }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
    } else { fallbackCopy(text); done(); }
  });
  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text; area.setAttribute("readonly", ""); area.style.position = "fixed"; area.style.opacity = "0";
    document.body.appendChild(area); area.select();
    try { document.execCommand("copy"); } catch (err) { /* nothing more to try */ }
    document.body.removeChild(area);
  }

  // --- relative times ---------------------------------------------------------------
  function relative(iso) {
    var then = Date.parse(iso);
    if (isNaN(then)) return null;
    var s = Math.round((Date.now() - then) / 1000);
    var future = s < 0; s = Math.abs(s);
    var text;
    if (s < 45) text = "just now";
    else if (s < 90) text = "1 min";
    else if (s < 3600) text = Math.round(s / 60) + " min";
    else if (s < 5400) text = "1 hour";
    else if (s < 86400) text = Math.round(s / 3600) + " hours";
    else if (s < 172800) text = "1 day";
    else if (s < 2592000) text = Math.round(s / 86400) + " days";
    else return new Date(then).toISOString().slice(0, 10);
    if (text === "just now") return text;
    return future ? "in " + text : text + " ago";
  }
  function refreshTimes(root) {
    (root || document).querySelectorAll("time[data-rel]").forEach(function (t) {
      var text = relative(t.getAttribute("datetime"));
      if (text) t.textContent = text;
    });
  }
  setInterval(refreshTimes, 30000);

  // --- inline validation: a field says what is wrong when it loses focus -------------
  document.addEventListener("focusout", function (e) {
    var input = e.target;
    if (!input.matches || !input.matches("[data-validate]")) return;
    var slot = document.getElementById(input.getAttribute("data-validate"));
    if (!slot) return;
    if (input.checkValidity()) {
      input.removeAttribute("aria-invalid"); slot.textContent = "";
    } else {
      input.setAttribute("aria-invalid", "true");
      slot.textContent = input.getAttribute("data-message") || input.validationMessage;
    }
  });

  // --- live operations --------------------------------------------------------------
  var WORDS = { create: "creating", update: "updating", replace: "replacing", delete: "destroying", read: "reading", same: "checking" };
  function setStatus(el, word, group) {
    if (!el) return;
    el.textContent = word;
    el.className = "status st-" + group;
  }
  function resourceStatus(stack, resource) {
    var row = document.querySelector('[data-resource="' + CSS.escape(stack + "/" + resource) + '"]');
    return row && row.querySelector(".status");
  }
  function line(ev) {
    var d = ev.data || {};
    var what = d.resource || "";
    switch (ev.kind) {
      case "operationStarted": return "operation started (attempt " + (d.attempt || 1) + ")";
      case "operationFinished": return "operation " + d.state;
      case "planned": return (d.stack || "") + ": planned " + d.steps + " steps, " + d.changes + " changes";
      case "stepStarted": return what + ": " + (WORDS[d.kind] || d.kind) + "…";
      case "stepSucceeded": return what + ": done in " + d.elapsedMs + " ms";
      case "stepFailed": return what + ": failed" + (d.code ? " (" + d.code + ")" : "") + ": " + d.message;
      case "stepSkipped": return what + ": skipped: " + d.reason;
      case "drift": return what + ": drifted (" + d.change + ")";
      case "reconciled": return what + ": reconciled (" + d.outcome + ")";
      case "waiting": return (d.stack || "") + ": waiting for " + d.heldBy;
      case "imported": return what + ": imported " + d.id;
      case "plan": return (d.stack || "") + ": preview ready";
      default: return ev.kind;
    }
  }
  function progress(root, ev) {
    var bar = root.querySelector("progress");
    var text = root.querySelector("[data-progress-text]");
    if (!bar) return;
    var d = ev.data || {};
    var max = parseInt(bar.getAttribute("max") || "0", 10);
    var value = parseInt(bar.getAttribute("value") || "0", 10);
    if (ev.kind === "planned") max += d.steps || 0;
    if (ev.kind === "stepSucceeded" || ev.kind === "stepFailed" || ev.kind === "stepSkipped") value += 1;
    bar.setAttribute("max", String(Math.max(max, 1)));
    bar.setAttribute("value", String(Math.min(value, max)));
    if (text) text.textContent = value + " of " + max + " steps done";
  }
  function draw(root, ev) {
    var d = ev.data || {};
    var log = root.querySelector("[data-log]");
    if (log) {
      var li = document.createElement("li");
      var t = document.createElement("time");
      t.setAttribute("datetime", ev.at); t.textContent = (ev.at || "").slice(11, 19);
      var span = document.createElement("span");
      span.textContent = line(ev);
      li.appendChild(t); li.appendChild(span);
      log.appendChild(li);
      log.scrollTop = log.scrollHeight;
    }
    progress(root, ev);
    if (d.stack && d.resource) {
      var el = resourceStatus(d.stack, d.resource);
      if (ev.kind === "stepStarted") setStatus(el, WORDS[d.kind] || "running", "running");
      else if (ev.kind === "stepSucceeded") setStatus(el, d.kind === "delete" ? "destroyed" : "ready", d.kind === "delete" ? "destroyed" : "ready");
      else if (ev.kind === "stepFailed") setStatus(el, "failed", "failed");
      else if (ev.kind === "drift") setStatus(el, "drifted", "drifted");
    }
    if (ev.kind === "stepFailed") announce(line(ev));
    if (ev.kind === "operationFinished") {
      var badge = root.querySelector("[data-op-status]");
      var group = d.state === "succeeded" ? "ready" : d.state === "failed" ? "failed" : "destroyed";
      setStatus(badge, d.state, group);
      announce("The operation " + d.state);
    }
  }
  document.addEventListener("htmx:sseBeforeMessage", function (e) {
    e.preventDefault(); // the events are JSON: drawn here, never swapped in as HTML
    var root = e.target.closest("[data-live]") || e.target;
    var ev;
    try { ev = JSON.parse(e.detail.data); } catch (err) { ev = null; }
    if (ev && ev.kind) draw(root, ev);
    if (e.detail.type === "end" || (ev && ev.kind === "operationFinished")) {
      // The server renders the final state (outcome, failure, retry) best.
      setTimeout(function () { window.location.reload(); }, 1500);
    }
  });
})();
