// --- logs: a server's log followed live (templates/logs/log.html) ------------------------------
// Lines come from an EventSource on api/v1/users/{name}/logs/stream. They are untrusted text:
// every line is set with textContent, never innerHTML. The stream sends `id:` = byte offset,
// so an EventSource that reconnects (lifetime reached, network blip) resumes without repeats.
// Loaded by logs/log.html only; needs common.js (hubkeeperCsrf).
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
