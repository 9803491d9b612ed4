// Gatehouse console: the recording page's player. It plays the recording's .cast file, served by
// the console, with the vendored asciinema-player. No inline script: the page's
// Content-Security-Policy allows only the console's own files (and WebAssembly compilation for
// the player's terminal emulator).
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", function () {
    var el = document.getElementById("player");
    if (!el) return;
    if (!window.AsciinemaPlayer) {
      el.textContent = "The player could not be loaded; download the .cast file instead.";
      el.dataset.state = "error";
      return;
    }
    var opts = {
      fit: "width",
      preload: true,
      idleTimeLimit: 2,
      speed: Number(el.dataset.speed) || 1,
      terminalFontFamily: "ui-monospace, Menlo, Consolas, 'DejaVu Sans Mono', monospace",
    };
    var cols = Number(el.dataset.cols), rows = Number(el.dataset.rows);
    if (cols > 0 && rows > 0) {
      opts.cols = cols;
      opts.rows = rows;
    }
    el.dataset.state = "loading";
    var player = AsciinemaPlayer.create({ url: el.dataset.cast, fetchOpts: { credentials: "same-origin" } }, el, opts);
    // The player's state, as data-state. Each report counts, so that a report put off is
    // dropped when another came after it.
    var reports = 0;
    function report(name) {
      reports++;
      el.dataset.state = name;
    }
    ["play", "playing", "pause"].forEach(function (name) {
      player.addEventListener(name, function () { report(name); });
    });
    // The player ends in the same task as it hands its terminal the last output, which the
    // terminal draws on the next animation frame: "ended" is reported once that frame is drawn,
    // so that it means the end is on the screen.
    player.addEventListener("ended", function () {
      var n = ++reports;
      requestAnimationFrame(function () {
        requestAnimationFrame(function () { if (reports === n) el.dataset.state = "ended"; });
      });
    });
    player.addEventListener("ready", function () { if (el.dataset.state === "loading") report("ready"); });
    player.addEventListener("error", function () { report("error"); });
    // The player listens for its keys on its wrapper, which it leaves out of the tab order: put
    // it in, so that the keyboard reaches the player.
    var tries = 0;
    (function focusable() {
      var wrapper = el.querySelector(".ap-wrapper");
      if (wrapper) {
        wrapper.tabIndex = 0;
        wrapper.setAttribute("aria-label", "Player: space plays and pauses");
      } else if (tries++ < 50) {
        setTimeout(focusable, 100);
      }
    })();
  });
})();
