// Hubkeeper's few behaviours that HTMX does not cover: confirm dialogs, toasts, spawn progress,
// keyboard shortcuts and the theme toggle. No framework; every string from the server is set
// with textContent, never innerHTML.

// The session's CSRF token (base.html puts it in the body's hx-headers). Hubkeeper wants it on
// every script-made request with the session cookie, reads included, as JupyterHub does since
// 4.1: EventSource cannot send headers, so it goes in the query as `_csrf`. Shared by the
// sections below (each is its own closure).
var hubkeeperCsrf = (function () {
  "use strict";
  function token() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || "";
    } catch (e) {
      return "";
    }
  }
  function url(plain) {
    var value = token();
    if (!value) return plain;
    return plain + (plain.indexOf("?") >= 0 ? "&" : "?") + "_csrf=" + encodeURIComponent(value);
  }
  return { token: token, url: url };
})();

(function () {
  "use strict";

  var $ = function (sel, root) {
    return (root || document).querySelector(sel);
  };
  var $$ = function (sel, root) {
    return Array.prototype.slice.call((root || document).querySelectorAll(sel));
  };


  // --- toasts -------------------------------------------------------------------------------
  var TOAST_MS = { ok: 6000, info: 8000, warning: 12000, error: 15000 };

  function toastKind(el) {
    var kinds = ["error", "warning", "info", "ok"];
    for (var i = 0; i < kinds.length; i++) {
      if (el.classList.contains("toast-" + kinds[i])) return kinds[i];
    }
    return "ok";
  }

  function dismiss(el) {
    if (!el || el.classList.contains("is-leaving")) return;
    el.classList.add("is-leaving");
    setTimeout(function () {
      el.remove();
    }, 200);
  }

  function armToast(el) {
    if (el.dataset.armed) return;
    el.dataset.armed = "1";
    var ms = TOAST_MS[toastKind(el)] || 6000;
    var timer = setTimeout(function () {
      dismiss(el);
    }, ms);
    el.addEventListener("mouseenter", function () {
      clearTimeout(timer);
    });
    el.addEventListener("mouseleave", function () {
      timer = setTimeout(function () {
        dismiss(el);
      }, 3000);
    });
  }

  // Shows a toast built on the client (network errors, reminders). `key` keeps one per kind.
  function toast(message, kind, key) {
    var box = $("#toasts");
    if (!box) return;
    if (key) {
      var old = box.querySelector('[data-toast-key="' + key + '"]');
      if (old) old.remove();
    }
    var el = document.createElement("div");
    el.className = "toast toast-" + (kind || "ok");
    el.setAttribute("role", kind === "error" ? "alert" : "status");
    el.setAttribute("data-toast", "");
    if (key) el.setAttribute("data-toast-key", key);
    var icon = document.createElement("span");
    icon.className = "toast-icon";
    icon.setAttribute("aria-hidden", "true");
    var text = document.createElement("div");
    text.className = "toast-text";
    text.textContent = message;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.setAttribute("data-toast-close", "");
    close.textContent = "×";
    el.append(icon, text, close);
    box.append(el);
    armToast(el);
  }

  function watchToasts() {
    var box = $("#toasts");
    if (!box) return;
    $$("[data-toast]", box).forEach(armToast);
    new MutationObserver(function () {
      $$("[data-toast]", box).forEach(armToast);
    }).observe(box, { childList: true, subtree: true });
  }

  // --- confirm dialog -------------------------------------------------------------------------
  // `hx-confirm` and `<form data-confirm>` both ask through this native <dialog>.
  function confirmDialog(opts) {
    var dialog = $("#confirm-dialog");
    if (!dialog || typeof dialog.showModal !== "function") {
      return Promise.resolve(window.confirm(opts.message)); // very old browsers only
    }
    $("#confirm-title", dialog).textContent = opts.title || "Are you sure?";
    $("#confirm-message", dialog).textContent = opts.message || "";
    var note = $("#confirm-note", dialog);
    note.textContent = opts.note || "";
    note.hidden = !opts.note;
    var ok = $("#confirm-ok", dialog);
    ok.textContent = opts.confirmLabel || "Confirm";
    ok.className = "button " + (opts.danger ? "button-danger" : "button-primary");
    dialog.returnValue = "";
    return new Promise(function (resolve) {
      dialog.addEventListener(
        "close",
        function () {
          resolve(dialog.returnValue === "confirm");
        },
        { once: true }
      );
      dialog.showModal();
      ok.focus();
    });
  }

  function confirmOptions(el, message) {
    return {
      title: el.getAttribute("data-confirm-title"),
      message: message,
      note: el.getAttribute("data-confirm-note"),
      confirmLabel: el.getAttribute("data-confirm-label"),
      danger: el.hasAttribute("data-confirm-danger"),
    };
  }

  document.addEventListener("htmx:confirm", function (evt) {
    var question = evt.detail.question;
    if (!question) return;
    evt.preventDefault();
    confirmDialog(confirmOptions(evt.detail.elt, question)).then(function (yes) {
      if (yes) evt.detail.issueRequest(true);
    });
  });

  document.addEventListener("submit", function (evt) {
    var form = evt.target;
    if (!(form instanceof HTMLFormElement)) return;
    var message = form.getAttribute("data-confirm");
    if (message && !form.dataset.confirmed) {
      evt.preventDefault();
      confirmDialog(confirmOptions(form, message)).then(function (yes) {
        if (!yes) return;
        form.dataset.confirmed = "1";
        form.submit(); // submit() skips this listener and any validation: fine for a button form
        delete form.dataset.confirmed;
        var after = form.getAttribute("data-after-submit");
        if (after) toast(after, "warning");
      });
    }
  });

  // --- dialogs opened by HTMX, and their close buttons ---------------------------------------
  document.addEventListener("htmx:afterRequest", function (evt) {
    var elt = evt.detail.elt;
    var id = elt && elt.getAttribute && elt.getAttribute("data-opens-dialog");
    if (!id || !evt.detail.successful) return;
    var dialog = document.getElementById(id);
    if (dialog && !dialog.open) {
      dialog.showModal();
      var focus = $("[autofocus]", dialog);
      if (focus) focus.focus();
    }
  });

  document.addEventListener("click", function (evt) {
    var t = evt.target;
    if (!(t instanceof Element)) return;
    var closer = t.closest("[data-close-dialog]");
    if (closer) {
      var dialog = closer.closest("dialog");
      if (dialog) dialog.close();
      return;
    }
    var toastClose = t.closest("[data-toast-close]");
    if (toastClose) {
      dismiss(toastClose.closest("[data-toast]"));
      return;
    }
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

  // --- keyboard -------------------------------------------------------------------------------
  document.addEventListener("keydown", function (evt) {
    if (evt.key !== "/" || evt.ctrlKey || evt.metaKey || evt.altKey) return;
    var active = document.activeElement;
    if (active && (active.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName))) {
      return;
    }
    if ($("dialog[open]")) return;
    var search = $("[data-search-shortcut]");
    if (search) {
      evt.preventDefault();
      search.focus();
      search.select();
    }
  });

  // --- theme ----------------------------------------------------------------------------------
  var THEMES = ["auto", "dark", "light"];

  function currentTheme() {
    return document.documentElement.getAttribute("data-theme") || "auto";
  }

  function labelTheme() {
    $$("[data-theme-toggle]").forEach(function (button) {
      button.setAttribute("aria-label", "Colour theme: " + currentTheme() + " (click to change)");
      button.title = "Theme: " + currentTheme();
    });
  }

  document.addEventListener("click", function (evt) {
    var button = evt.target instanceof Element && evt.target.closest("[data-theme-toggle]");
    if (!button) return;
    var next = THEMES[(THEMES.indexOf(currentTheme()) + 1) % THEMES.length];
    if (next === "auto") document.documentElement.removeAttribute("data-theme");
    else document.documentElement.setAttribute("data-theme", next);
    try {
      if (next === "auto") localStorage.removeItem("hubkeeper-theme");
      else localStorage.setItem("hubkeeper-theme", next);
    } catch (e) {
      /* not remembered; still applied */
    }
    labelTheme();
  });

  // --- spawn progress -------------------------------------------------------------------------
  // One EventSource per starting server, kept across row re-renders (polling replaces rows);
  // the last event is re-applied to whichever element now shows that server. The hub answers
  // "not starting" until the start request reaches it, so a stream that fails is reopened
  // while the row still shows progress.
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

  // While an action is on its way, polling would show the row as it was: hold it back.
  var actionsInFlight = 0;
  // The row a keyboard user acted on is replaced by the answer: give focus back to it.
  var lastActedRow = null;

  document.addEventListener("htmx:afterSettle", function () {
    if (!lastActedRow) return;
    var active = document.activeElement;
    if (active && active !== document.body && document.contains(active)) return;
    var row = document.getElementById(lastActedRow);
    var button = row && $("button:not([disabled])", row);
    if (button) button.focus({ preventScroll: true });
    lastActedRow = null;
  });

  // --- HTMX integration -----------------------------------------------------------------------
  // The list must not change under someone who is confirming or acting on a row: the button
  // they pressed would be replaced, and its request lost.
  function holdList() {
    return actionsInFlight > 0 || !!$("dialog[open]");
  }

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
    var url = (results.getAttribute("hx-get") || "").replace(/([?&])since=[^&]*&?/, "$1");
    window.htmx.ajax("GET", url, { source: results, target: results, swap: "outerHTML" });
  }

  document.addEventListener("htmx:beforeSwap", function (evt) {
    var xhr = evt.detail.xhr;
    var target = evt.detail.target;
    if (target && target.id === "results" && evt.detail.elt === target && holdList()) {
      evt.detail.shouldSwap = false;
      return;
    }
    // Errors from Hubkeeper come retargeted to #toasts; anything else (a proxy's 502 page)
    // must not replace the list.
    if (xhr && xhr.status >= 400 && !xhr.getResponseHeader("HX-Retarget")) {
      evt.detail.shouldSwap = false;
      toast(
        "Hubkeeper answered " + xhr.status + " " + (xhr.statusText || "") + "; try again.",
        "error",
        "http-" + xhr.status
      );
    }
  });

  document.addEventListener("htmx:sendError", function () {
    toast("Hubkeeper did not answer. Is it running? Retrying…", "error", "offline");
  });

  document.addEventListener("htmx:afterSwap", function () {
    var offline = $('[data-toast-key="offline"]');
    if (offline) dismiss(offline);
  });

  // A row whose status changed since the last render flashes once, so a change is noticed.
  var lastStatus = {};

  function markChangedRows() {
    var seen = {};
    $$("#results tbody tr[id]").forEach(function (row) {
      var status = row.getAttribute("data-status");
      seen[row.id] = status;
      if (lastStatus[row.id] && lastStatus[row.id] !== status) {
        row.classList.remove("is-changed");
        void row.offsetWidth; // restart the animation
        row.classList.add("is-changed");
      }
    });
    lastStatus = seen;
  }

  document.addEventListener("htmx:afterSettle", markChangedRows);

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && window.htmx) window.htmx.trigger(document.body, "refresh-rows");
  });

  function onLoad(root) {
    watchProgress(root || document);
  }

  document.addEventListener("DOMContentLoaded", function () {
    watchToasts();
    markChangedRows();
    labelTheme();
    if (window.htmx) {
      window.htmx.onLoad(onLoad);
    } else {
      onLoad(document);
    }
  });

  window.hubkeeper = { toast: toast, confirm: confirmDialog };
})();

// --- logs: a server's log followed live (templates/logs/log.html) ------------------------------
// Lines come from an EventSource on api/v1/users/{name}/logs/stream. They are untrusted text:
// every line is set with textContent, never innerHTML. The stream sends `id:` = byte offset,
// so an EventSource that reconnects (lifetime reached, network blip) resumes without repeats.
(function () {
  "use strict";

  var MAX_LINES = 10000; // lines kept in the pane; older ones are dropped

  function initLogView(view) {
    if (view.dataset.logArmed) return;
    view.dataset.logArmed = "1";
    var pane = view.querySelector("[data-log-pane]");
    var stateEl = view.querySelector("[data-log-state]");
    var stateText = view.querySelector("[data-log-state-text]");
    var countEl = view.querySelector("[data-log-count]");
    var pauseBtn = view.querySelector("[data-log-pause]");
    var follow = view.querySelector("[data-log-follow]");
    var clearBtn = view.querySelector("[data-log-clear]");
    var notice = view.querySelector("[data-log-notice]");
    var url = view.getAttribute("data-stream-url");
    var paused = false;
    var held = []; // lines that arrived while paused
    var shown = 0;
    var received = 0;
    var source = null;
    var ended = false;
    // Transient trouble (hub restart, proxy or server not answering) is retried with backoff:
    // a new EventSource sends no Last-Event-ID, so the last id goes in the query instead.
    var lastId = "";
    var backoff = 0; // ms; 0 = no retry pending
    var TRANSIENT = ["hub_unavailable", "server_unreachable"];

    function retryLater() {
      if (ended) return;
      if (source) source.close();
      backoff = Math.min(backoff ? backoff * 2 : 1000, 30000);
      setState("reconnecting", "reconnecting…");
      setTimeout(connect, backoff * (0.75 + Math.random() / 2));
    }

    function setState(state, text) {
      stateEl.setAttribute("data-log-state", state);
      stateText.textContent = text;
    }

    function showNotice(message) {
      notice.textContent = message;
      notice.hidden = false;
    }

    function updateCount() {
      var text = shown + (shown === 1 ? " line" : " lines");
      if (received > shown && shown >= MAX_LINES) text += " (last " + MAX_LINES + " kept)";
      if (held.length) text += " · " + held.length + " waiting";
      countEl.textContent = text;
    }

    function append(lines) {
      if (!lines.length) return;
      var fragment = document.createDocumentFragment();
      lines.forEach(function (line) {
        var el = document.createElement("div");
        el.className = "log-line";
        el.textContent = line; // untrusted: text only
        fragment.appendChild(el);
      });
      pane.appendChild(fragment);
      shown += lines.length;
      while (shown > MAX_LINES && pane.firstChild) {
        pane.removeChild(pane.firstChild);
        shown -= 1;
      }
      if (follow.checked) pane.scrollTop = pane.scrollHeight;
    }

    function onLines(lines) {
      received += lines.length;
      if (paused) {
        Array.prototype.push.apply(held, lines);
        if (held.length > MAX_LINES) held.splice(0, held.length - MAX_LINES);
      } else {
        append(lines);
      }
      updateCount();
    }

    function parse(event) {
      try {
        return JSON.parse(event.data);
      } catch (e) {
        return {};
      }
    }

    // The stream's HTTP answer was an error (404/409/503): ask the JSON endpoint why.
    function explainFailure() {
      var jsonUrl = url.replace("/logs/stream", "/logs") + (url.indexOf("?") >= 0 ? "&" : "?") + "lines=1";
      fetch(jsonUrl, { credentials: "same-origin", headers: { Accept: "application/json", "X-CSRF-Token": hubkeeperCsrf.token() } })
        .then(function (response) {
          return response.json().then(function (body) {
            return { status: response.status, body: body };
          });
        })
        .then(function (result) {
          if (result.status < 400 || result.status === 503 || result.status === 502) {
            retryLater();
            return;
          }
          stop(result.body.error === "server_not_running" ? "stopped" : "error", result.body);
        })
        .catch(function () {
          retryLater(); // Hubkeeper itself restarting
        });
    }

    function stop(kind, body) {
      ended = true;
      if (source) source.close();
      setState(kind, kind === "stopped" ? "server stopped" : "disconnected");
      if (body && body.detail) showNotice(body.detail);
      var pill = document.querySelector("[data-log-status]");
      if (pill && kind === "stopped") {
        pill.className = "pill pill-stopped";
        pill.querySelector("[data-log-status-text]").textContent = "not running";
      }
    }

    function connect() {
      if (ended) return;
      var resume = lastId ? (url.indexOf("?") >= 0 ? "&" : "?") + "last_event_id=" + encodeURIComponent(lastId) : "";
      source = new EventSource(hubkeeperCsrf.url(url + resume));
      source.onopen = function () {
        setState("live", "live");
      };
      source.onmessage = function (event) {
        setState("live", "live");
        backoff = 0;
        if (event.lastEventId) lastId = event.lastEventId;
        onLines(parse(event).lines || []);
      };
      source.addEventListener("notice", function (event) {
        if (event.lastEventId) lastId = event.lastEventId;
        showNotice(parse(event).message || "");
      });
      source.addEventListener("timeout", function () {
        setState("reconnecting", "reconnecting…"); // EventSource reconnects by itself
      });
      source.addEventListener("reconnect", function () {
        setState("reconnecting", "reconnecting…"); // Hubkeeper restarting; resumes by Last-Event-ID
      });
      source.addEventListener("error", function (event) {
        if (event.data) {
          var body = parse(event);
          if (TRANSIENT.indexOf(body.error) >= 0) {
            retryLater();
            return;
          }
          stop(body.error === "server_not_running" ? "stopped" : "error", body);
          return;
        }
        if (source.readyState === EventSource.CLOSED) {
          explainFailure();
        } else {
          setState("reconnecting", "reconnecting…");
        }
      });
    }

    pauseBtn.addEventListener("click", function () {
      paused = !paused;
      pauseBtn.setAttribute("aria-pressed", paused ? "true" : "false");
      pauseBtn.textContent = paused ? "Resume" : "Pause";
      view.classList.toggle("is-paused", paused);
      if (!paused) {
        var lines = held;
        held = [];
        append(lines);
      }
      updateCount();
    });

    follow.addEventListener("change", function () {
      if (follow.checked) pane.scrollTop = pane.scrollHeight;
    });

    // Scrolling up to read stops following; scrolling back to the bottom resumes it.
    function unfollow() {
      if (pane.scrollHeight > pane.clientHeight) follow.checked = false;
    }
    pane.addEventListener("wheel", function (event) {
      if (event.deltaY < 0) unfollow();
    });
    pane.addEventListener("keydown", function (event) {
      if (["ArrowUp", "PageUp", "Home"].indexOf(event.key) >= 0) unfollow();
    });
    pane.addEventListener("scroll", function () {
      if (pane.scrollHeight - pane.scrollTop - pane.clientHeight < 4) follow.checked = true;
    });

    clearBtn.addEventListener("click", function () {
      pane.textContent = "";
      shown = 0;
      received = 0;
      held = [];
      notice.hidden = true;
      updateCount();
    });

    window.addEventListener("pagehide", function () {
      if (source) source.close();
    });

    connect();
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-log-view]"), initLogView);
  });
})();
