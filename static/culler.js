// The culler page (templates/culler/culler.html): each duration field, kept in seconds (what
// the API and the environment use), says what it means in hours and minutes as you type.
(function () {
  "use strict";

  // 3725 → "1 h 02 min": the same words as the page's tables (culler/pages.py `human`).
  function human(total) {
    if (total < 60) return total + " s";
    var minutes = Math.floor(total / 60);
    if (minutes < 60) return minutes + " min";
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    if (hours < 48) return hours + " h " + (minutes < 10 ? "0" : "") + minutes + " min";
    return Math.floor(hours / 24) + " d " + (hours % 24) + " h";
  }

  function describe(input) {
    var out = document.getElementById(input.getAttribute("data-duration"));
    if (!out) return;
    var raw = input.value.trim();
    var value = Number(raw);
    if (!/^\d+$/.test(raw)) {
      out.textContent = "";
      return;
    }
    if (value === 0 && input.hasAttribute("data-zero-off")) out.textContent = "= off";
    else out.textContent = "= " + human(value);
  }

  document.addEventListener("input", function (evt) {
    var t = evt.target;
    if (t instanceof HTMLInputElement && t.hasAttribute("data-duration")) describe(t);
  });

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("input[data-duration]"), describe);
  });
})();
