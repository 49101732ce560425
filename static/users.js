// The users page (templates/console/): spawn progress, row actions, the live list and its
// filters. Needs common.js (window.hubkeeper) and htmx with the idiomorph extension: the list
// refreshes by morphing (`hx-swap="morph"`), so a row whose HTML did not change keeps its DOM
// nodes — the focused button, its row and the scroll position survive every update.
(function () {
  "use strict";

  var $ = window.hubkeeper.$;
  var $$ = window.hubkeeper.$$;

  // --- spawn progress -------------------------------------------------------------------------
  // One EventSource per starting server, kept across row re-renders; the last event is
  // re-applied to whichever element now shows that server. The hub answers "not starting"
  // until the start request reaches it, so a stream that fails is reopened while the row
  // still shows progress.
  var streams = {};
  var RETRY_MS = 700;
  var MAX_RETRIES = 40;
  var FORGET_AFTER_MS = 5000;

  function progressElements(key) {
    return $$('.spawn-progress[data-progress-key="' + key + '"]');
  }

  function applyProgress(key) {
    var s = streams[key];
    if (!s) return;
    progressElements(key).forEach(function (el) {
      var pct = Math.max(0, Math.min(100, s.progress || 0));
      var bar = $(".spawn-bar", el);
      if (bar) bar.style.width = Math.max(pct, 4) + "%";
      el.setAttribute("aria-valuenow", String(pct));
      var msg = $(".spawn-message", el);
      if (msg && s.message) {
        msg.textContent = s.message;
        msg.title = s.message;
      }
      el.classList.toggle("is-ready", !!s.ready);
      el.classList.toggle("is-failed", !!s.failed);
    });
  }

  function openStream(key, url) {
    var s = streams[key];
    if (!s || s.finished) return;
    var source = new EventSource(hubkeeperCsrf.url(url));
    s.source = source;
    var retry = function () {
      source.close();
      if (s.finished || streams[key] !== s) return;
      if (s.retries++ >= MAX_RETRIES || !progressElements(key).length) return;
      setTimeout(function () {
        openStream(key, url);
      }, RETRY_MS);
    };
    source.onmessage = function (msg) {
      var data;
      try {
        data = JSON.parse(msg.data);
      } catch (e) {
        return;
      }
      if (typeof data.progress === "number") s.progress = data.progress;
      if (data.message) s.message = data.message;
      if (data.ready) {
        s.ready = true;
        s.progress = 100;
        s.message = data.message || "Ready";
      }
      if (data.failed) {
        s.failed = true;
        s.message = data.message || "The server failed to start";
      }
      applyProgress(key);
      if (data.ready || data.failed) {
        s.finished = true;
        source.close();
        setTimeout(function () {
          if (streams[key] === s) delete streams[key];
          if (window.htmx) window.htmx.trigger(document.body, "refresh-rows");
        }, 800);
      }
    };
    // Both a dropped connection and Hubkeeper's own `event: error` (e.g. "not starting yet").
    source.addEventListener("error", retry);
    source.addEventListener("timeout", retry);
    source.addEventListener("reconnect", retry); // Hubkeeper restarting: ask the next one
  }

  function watchProgress(root) {
    $$(".spawn-progress[data-progress-url]", root).forEach(function (el) {
      var key = el.getAttribute("data-progress-key");
      if (!key) return;
      if (streams[key]) {
        applyProgress(key);
        return;
      }
      streams[key] = { progress: 0, message: "", retries: 0, source: null };
      applyProgress(key);
      openStream(key, el.getAttribute("data-progress-url"));
    });
  }

  // Rows re-render often; stop listening only once a server has been gone a while.
  setInterval(function () {
    var now = Date.now();
    Object.keys(streams).forEach(function (key) {
      var s = streams[key];
      if (progressElements(key).length) {
        s.missingSince = 0;
      } else if (!s.missingSince) {
        s.missingSince = now;
      } else if (now - s.missingSince > FORGET_AFTER_MS) {
        if (s.source) s.source.close();
        s.finished = true;
        delete streams[key];
      }
    });
  }, 1000);

  // Starting can take the hub's whole spawn before the POST answers: show progress at once.
  function showStarting(button) {
    var row = button.closest("tr");
    var cell = row && $(".cell-status", row);
    if (!cell || $(".spawn-progress", cell)) return;
    var pill = $(".pill", cell);
    if (pill) {
      pill.className = "pill pill-starting";
      pill.lastChild.textContent = "starting";
    }
    var box = document.createElement("div");
    box.className = "spawn-progress";
    box.setAttribute("data-progress-url", button.getAttribute("data-progress-url"));
    box.setAttribute("data-progress-key", button.getAttribute("data-progress-key"));
    box.setAttribute("role", "progressbar");
    box.setAttribute("aria-label", "Start progress");
    box.setAttribute("aria-valuemin", "0");
    box.setAttribute("aria-valuemax", "100");
    box.setAttribute("aria-valuenow", "0");
    var track = document.createElement("div");
    track.className = "spawn-track";
    var bar = document.createElement("div");
    bar.className = "spawn-bar";
    track.append(bar);
    var msg = document.createElement("span");
    msg.className = "spawn-message";
    msg.textContent = "Asking the hub to start it…";
    box.append(track, msg);
    cell.append(box);
    watchProgress(cell);
  }

  // --- row actions and the live list ------------------------------------------------------------
  // While an action is on its way, polling would show the row as it was: hold it back.
  var actionsInFlight = 0;
  // An action's answer replaces its row (a Stop button becomes Start): give focus back to it.
  var lastActedRow = null;

  document.addEventListener("htmx:afterSettle", function () {
    if (!lastActedRow) return;
    var active = document.activeElement;
    if (active && active !== document.body && document.contains(active)) return;
    var row = document.getElementById(lastActedRow);
    var button = row && $("button:not([disabled]), a.button", row);
    if (button) button.focus({ preventScroll: true });
    lastActedRow = null;
  });

  // The list must not change under someone who is confirming or acting on a row: the button
  // they pressed would be replaced, and its request lost.
  function holdList() {
    return actionsInFlight > 0 || !!$("dialog[open]");
  }

  // The poll asks "anything since this version?"; the version is the region's `data-since`,
  // read at each request (morphing keeps the element, so a URL fixed in hx-get would not move).
  document.addEventListener("htmx:configRequest", function (evt) {
    var elt = evt.detail.elt;
    if (!elt || elt.id !== "results" || !elt.dataset.since) return;
    var cause = evt.detail.triggeringEvent;
    if (!cause || cause.type !== "refresh-rows") evt.detail.parameters.since = elt.dataset.since;
  });

  document.addEventListener("htmx:beforeRequest", function (evt) {
    var elt = evt.detail.elt;
    if (elt && elt.id === "results" && (holdList() || document.hidden)) {
      evt.preventDefault(); // a hidden tab does not poll; it catches up when shown again
      return;
    }
    if (evt.detail.requestConfig && evt.detail.requestConfig.verb === "post") {
      actionsInFlight++;
      var actedRow = elt && elt.closest && elt.closest("tr[id]");
      if (actedRow) lastActedRow = actedRow.id;
      if (elt && elt.hasAttribute("data-progress-url")) showStarting(elt);
    }
  });

  document.addEventListener("htmx:afterRequest", function (evt) {
    if (evt.detail.requestConfig && evt.detail.requestConfig.verb === "post") {
      actionsInFlight = Math.max(0, actionsInFlight - 1);
      // After htmx has finished with this request (its own bookkeeping runs after this event).
      if (!evt.detail.successful) setTimeout(reloadResults, 0);
    }
  });

  // Re-render the list even if nothing changed on the server (undoes optimistic changes).
  function reloadResults() {
    var results = $("#results");
    if (!results || !window.htmx) return;
    window.htmx.trigger(document.body, "refresh-rows");
  }

  document.addEventListener("htmx:beforeSwap", function (evt) {
    var target = evt.detail.target;
    if (target && target.id === "results" && evt.detail.elt === target && holdList()) {
      evt.detail.shouldSwap = false;
    }
  });

  // After a stop-all dialog closes, refresh the list at once rather than on the next poll.
  document.addEventListener(
    "close",
    function (evt) {
      if (evt.target && evt.target.id === "stop-all-dialog" && window.htmx) {
        window.htmx.trigger(document.body, "refresh-rows");
      }
    },
    true
  );

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && window.htmx) window.htmx.trigger(document.body, "refresh-rows");
  });

  // --- what changed: a flash for the eye, one polite sentence for a screen reader -------------
  // The table is not a live region (a re-read of it on every poll is noise); the changes are
  // said once in #live-status (users.html, role=status).
  var lastStatus = null;

  function rowLabel(row) {
    var user = row.getAttribute("data-user");
    var server = row.getAttribute("data-server");
    return server ? user + "’s server “" + server + "”" : user + "’s server";
  }

  function noteChanges() {
    var seen = {};
    var said = [];
    $$("#results tbody tr[id]").forEach(function (row) {
      var status = row.getAttribute("data-status");
      seen[row.id] = status;
      if (lastStatus && lastStatus[row.id] && lastStatus[row.id] !== status) {
        row.classList.remove("is-changed");
        void row.offsetWidth; // restart the animation
        row.classList.add("is-changed");
        said.push(rowLabel(row) + " is " + status);
      }
    });
    lastStatus = seen;
    var live = $("#live-status");
    if (live && said.length) {
      live.textContent =
        said.length > 3 ? said.length + " servers changed status." : said.join(". ") + ".";
    }
  }

  document.addEventListener("htmx:afterSettle", noteChanges);

  // --- filters --------------------------------------------------------------------------------
  function setFilter(name, value) {
    var form = $("#filters");
    var field = form && form.elements.namedItem(name);
    if (!field) return false;
    field.value = value;
    field.dispatchEvent(new Event("change", { bubbles: true }));
    return true;
  }

  function clearFilters() {
    var form = $("#filters");
    if (!form) return false;
    $$("input[type=search]", form).forEach(function (input) {
      input.value = "";
    });
    $$("select", form).forEach(function (select) {
      if (select.name !== "sort") select.selectedIndex = 0;
    });
    form.dispatchEvent(new Event("change", { bubbles: true }));
    return true;
  }

  document.addEventListener("click", function (evt) {
    var t = evt.target;
    if (!(t instanceof Element)) return;
    var sorter = t.closest("a[data-sort]");
    if (sorter && setFilter("sort", sorter.getAttribute("data-sort"))) {
      evt.preventDefault();
      return;
    }
    var clear = t.closest("[data-clear-filters]");
    if (clear && clearFilters()) {
      evt.preventDefault();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    noteChanges();
    if (window.htmx) window.htmx.onLoad(watchProgress);
    else watchProgress(document);
  });
})();
