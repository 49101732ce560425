// What every page needs (base.html loads it): the CSRF token for script-made requests, HTMX
// error handling, toasts, the confirm dialog and dialogs opened by HTMX, the "/" shortcut, the
// theme toggle, the phone menu, and cell labels for tables shown as cards on small screens.
// Pages add their own file in `{% block scripts %}` (users.js, logs.js, culler.js). No
// framework; every string from the server is set with textContent, never innerHTML.

// The session's CSRF token (base.html puts it in the body's hx-headers). Hubkeeper wants it on
// every script-made request with the session cookie, reads included, as JupyterHub does since
// 4.1: EventSource cannot send headers, so it goes in the query as `_csrf`.
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
  // `hx-confirm` and `<form data-confirm>` both ask through this native <dialog>. It opens on
  // Cancel: the button that acts is never the default, so Enter, Enter does nothing harmful.
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
      $("#confirm-cancel", dialog).focus();
    });
  }

  function confirmOptions(el, message) {
    // `data-confirm-note-if="<selector>"`: the note holds while that checkbox in the form is
    // checked; unchecked, `data-confirm-note-else` is said instead (the choice made now).
    var note = el.getAttribute("data-confirm-note");
    var condition = el.getAttribute("data-confirm-note-if");
    var box = condition ? el.querySelector(condition) : null;
    if (box && !box.checked) note = el.getAttribute("data-confirm-note-else");
    return {
      title: el.getAttribute("data-confirm-title"),
      message: message,
      note: note,
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
  // A dialog opens on its `autofocus` element (a reason field, or Close), else on Cancel.
  document.addEventListener("htmx:afterRequest", function (evt) {
    var elt = evt.detail.elt;
    var id = elt && elt.getAttribute && elt.getAttribute("data-opens-dialog");
    if (!id || !evt.detail.successful) return;
    var dialog = document.getElementById(id);
    if (dialog && !dialog.open) {
      dialog.showModal();
      var focus = $("[autofocus]", dialog) || $("[data-close-dialog]", dialog);
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
      // The same body shown as a page (users/stop-all opened directly): back to the list.
      else window.location.assign((document.body.getAttribute("data-base") || "/") + "users");
      return;
    }
    var toastClose = t.closest("[data-toast-close]");
    if (toastClose) {
      dismiss(toastClose.closest("[data-toast]"));
    }
  });

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
      var text = $("[data-theme-name]", button);
      if (text) text.textContent = currentTheme();
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

  // --- the phone menu -------------------------------------------------------------------------
  // Below the breakpoint the nav, the theme toggle and the signed-in name fold into a menu
  // opened by a button (base.html); on wide screens the button is hidden and the menu shown.
  function setMenu(open) {
    var button = $("[data-menu-toggle]");
    var bar = button && button.closest(".topbar");
    if (!bar) return;
    bar.classList.toggle("is-open", open);
    button.setAttribute("aria-expanded", open ? "true" : "false");
  }

  document.addEventListener("click", function (evt) {
    var t = evt.target;
    if (!(t instanceof Element)) return;
    var button = t.closest("[data-menu-toggle]");
    if (button) {
      setMenu(button.getAttribute("aria-expanded") !== "true");
      return;
    }
    var bar = $(".topbar.is-open");
    if (bar && !bar.contains(t)) setMenu(false);
  });

  document.addEventListener("keydown", function (evt) {
    if (evt.key !== "Escape" || !$(".topbar.is-open")) return;
    setMenu(false);
    var button = $("[data-menu-toggle]");
    if (button) button.focus();
  });

  // --- tables shown as cards on small screens -------------------------------------------------
  // Each cell of a `.table-stack` table gets its column's name in `data-label`, which the
  // small-screen CSS prints before the value (the header row is hidden there).
  function labelCells(root) {
    $$("table.table-stack", root).forEach(function (table) {
      var names = $$("thead th", table).map(function (th) {
        return th.textContent.trim();
      });
      $$("tbody tr", table).forEach(function (row) {
        var column = 0;
        Array.prototype.forEach.call(row.children, function (cell) {
          var span = cell.colSpan || 1;
          // A cell over several columns ("No pass yet.") stands alone, without a label.
          var name = span > 1 ? "" : names[column] || "";
          if (!cell.hasAttribute("data-label")) cell.setAttribute("data-label", name);
          column += span;
        });
      });
    });
  }

  // --- HTMX errors ----------------------------------------------------------------------------
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var xhr = evt.detail.xhr;
    // Errors from Hubkeeper come retargeted to #toasts; anything else (a proxy's 502 page)
    // must not replace what is on the page.
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

  document.addEventListener("DOMContentLoaded", function () {
    watchToasts();
    labelTheme();
    if (window.htmx) window.htmx.onLoad(labelCells);
    else labelCells(document);
  });

  window.hubkeeper = { toast: toast, confirm: confirmDialog, $: $, $$: $$ };
})();
