// Gatehouse console: live updates (from htmx's SSE extension), expiry countdowns, keyboard
// shortcuts and the confirmation of decisions. No inline script anywhere: the page's
// Content-Security-Policy allows only this file and the vendored htmx.
(function () {
  "use strict";

  function parse(html) {
    var t = document.createElement("template");
    t.innerHTML = html;
    return t.content;
  }

  function setStatus(text, kind) {
    var el = document.getElementById("status");
    if (!el) return;
    el.hidden = !text;
    el.textContent = text || "";
    el.className = "status" + (kind ? " " + kind : "");
    document.body.dataset.live = kind === "ok" ? "true" : "false";
  }

  // upsert replaces the element of an event's fragment, or adds a new inbox row on top.
  function upsert(live, html) {
    var frag = parse(html);
    var incoming = frag.firstElementChild;
    if (!incoming) return;
    var current = document.getElementById(incoming.id);
    if (current) {
      current.replaceWith(incoming);
    } else if (live.dataset.mode === "inbox" && incoming.dataset.state === "Pending") {
      var list = document.getElementById("inbox");
      list.insertBefore(incoming, list.firstChild);
    }
    afterChange(live);
  }

  function reset(live, html) {
    var frag = parse(html);
    if (live.dataset.mode === "inbox") {
      var list = document.getElementById("inbox");
      list.replaceChildren(frag);
    } else {
      var el = frag.firstElementChild;
      var current = el && document.getElementById(el.id);
      if (current) current.replaceWith(el);
    }
    afterChange(live);
  }

  function afterChange(live) {
    if (live.dataset.mode === "inbox") {
      var empty = document.getElementById("empty");
      var list = document.getElementById("inbox");
      if (empty) empty.hidden = list.children.length > 0;
    } else {
      var panel = live.querySelector(".status-panel");
      var decide = document.getElementById("decide");
      if (panel && decide) decide.hidden = panel.dataset.canDecide !== "true";
    }
    tick();
  }

  function duration(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    s = s % 60;
    return (h ? h + "h " : "") + (h || m ? m + "m " : "") + s + "s";
  }

  // tick updates every countdown; a pending request whose deadline passed shows as expired at
  // once (the server records the expiry within a second and the event follows).
  function tick() {
    var now = Date.now();
    document.querySelectorAll("time.countdown").forEach(function (el) {
      if (el.dataset.state !== "Pending") return;
      var left = Date.parse(el.getAttribute("datetime")) - now;
      if (left <= 0) {
        el.textContent = "expired";
        el.classList.add("expired");
        var decide = document.getElementById("decide");
        if (decide) decide.hidden = true;
      } else {
        el.textContent = "expires in " + duration(left);
        el.classList.toggle("soon", left < 60000);
      }
    });
  }

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("#inbox > li"));
  }

  function move(delta) {
    var list = rows();
    if (!list.length) return;
    var i = list.indexOf(document.activeElement && document.activeElement.closest("#inbox > li"));
    i = Math.min(list.length - 1, Math.max(0, i + delta));
    var link = list[i].querySelector("a.req-title");
    if (link) link.focus();
  }

  function confirmDecision(form, verdict, submitter) {
    var dialog = document.getElementById("confirm");
    var reason = form.querySelector("#reason");
    if (!form.reportValidity()) return;
    if (!dialog || typeof dialog.showModal !== "function") {
      form.dataset.confirmed = "true";
      form.requestSubmit(submitter);
      return;
    }
    document.getElementById("confirm-title").textContent = verdict + "?";
    document.getElementById("confirm-text").textContent =
      verdict + " " + form.dataset.summary + " with the reason: " + reason.value.trim();
    dialog.returnValue = "";
    dialog.onclose = function () {
      if (dialog.returnValue === "confirm") {
        form.dataset.confirmed = "true";
        form.requestSubmit(submitter);
      } else {
        submitter.focus();
      }
    };
    dialog.showModal();
    document.getElementById("confirm-yes").focus();
  }

  function typing(el) {
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var live = document.getElementById("live");
    if (live) {
      live.addEventListener("request", function (e) { upsert(live, e.detail.data); });
      live.addEventListener("reset", function (e) { reset(live, e.detail.data); });
      live.addEventListener("status", function (e) {
        if (e.detail.data === "live") setStatus("", "ok");
        else setStatus("The console has lost NATS; showing the last known state. Reconnecting…", "warn");
      });
      live.addEventListener("htmx:sse:error", function (e) {
        if (e.detail && e.detail.status === 401) { window.location.reload(); return; }
        setStatus("Connection lost. Reconnecting…", "warn");
      });
      live.addEventListener("htmx:sse:close", function () { setStatus("Connection closed. Reconnecting…", "warn"); });
      live.addEventListener("htmx:sse:after:connection", function () { setStatus("", "ok"); });
    }

    var form = document.getElementById("decide-form");
    if (form) {
      form.addEventListener("submit", function (e) {
        if (form.dataset.confirmed === "true") return;
        e.preventDefault();
        var submitter = e.submitter || form.querySelector("button.approve");
        confirmDecision(form, submitter.value, submitter);
      });
    }

    document.addEventListener("keydown", function (e) {
      if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
      if (document.querySelector("dialog[open]")) return;
      var decide = document.getElementById("decide");
      switch (e.key) {
        case "j": move(1); break;
        case "k": move(-1); break;
        case "a":
        case "d":
          if (form && decide && !decide.hidden) {
            e.preventDefault();
            var button = form.querySelector(e.key === "a" ? "button.approve" : "button.deny");
            if (!form.querySelector("#reason").value.trim()) {
              form.querySelector("#reason").focus();
              form.reportValidity();
              return;
            }
            confirmDecision(form, button.value, button);
          } else if (e.key === "a" || e.key === "d") {
            var row = document.activeElement && document.activeElement.closest("#inbox > li");
            if (row && row.dataset.canDecide === "true") window.location.href = row.querySelector("a.req-title").href + "#decide";
          }
          break;
        case "?":
          if (form && decide && !decide.hidden) { e.preventDefault(); form.querySelector("#reason").focus(); }
          break;
        default:
          return;
      }
    });

    tick();
    setInterval(tick, 1000);
  });
})();
