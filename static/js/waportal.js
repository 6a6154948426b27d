// Small page behaviours htmx does not cover. Confirmation is hx-confirm; everything here is progressive:
// the pages work without it, only less live.

// After the live socket comes back, re-render the sections marked data-refresh-on-reconnect, so nothing
// missed while offline is lost (the ws extension reconnects by itself, with backoff).
// The mark is on the socket's element, not on the sections: one swapped in after the first open (the
// conversation the inbox opens beside its list) is refreshed on a reconnect too.
document.addEventListener("htmx:wsOpen", function (evt) {
  var socket = evt.target && evt.target.dataset ? evt.target : document.body;
  if (socket.dataset.wsOpened) {
    socket.querySelectorAll("[data-refresh-on-reconnect]").forEach(function (el) { htmx.trigger(el, "refresh"); });
  }
  socket.dataset.wsOpened = "1";
});

// An element pushed twice (a message sent from this tab arrives again over the socket) keeps one copy.
// data-dedupe="keep": the new copy takes the old one's place (messages keep their order);
// data-dedupe="move": the old copy goes, the new one stays where it was put (a chat moves to the top).
// "New" is the node the mutation added; without one (a whole list swapped in), the first copy stays.
function dedupe(container, added) {
  var seen = {};
  var mode = container.dataset.dedupe;
  Array.prototype.slice.call(container.children).forEach(function (child) {
    if (!child.id) { return; }
    var earlier = seen[child.id];
    if (earlier) {
      if (mode === "keep") {
        earlier.replaceWith(child);
      } else if (added && added.indexOf(earlier) !== -1 && added.indexOf(child) === -1) {
        child.remove();
        return;
      } else if (added && added.indexOf(child) !== -1) {
        earlier.remove();
      } else {
        child.remove();
        return;
      }
    }
    seen[child.id] = child;
  });
}
var dedupeObserver = new MutationObserver(function (records) {
  records.forEach(function (r) {
    if (r.target.dataset && r.target.dataset.dedupe) {
      dedupe(r.target, Array.prototype.slice.call(r.addedNodes));
    }
  });
});
// A container swapped in whole (a list re-fetched after a reconnect) is watched from the swap on, and what
// was pushed into it before that (between the swap and the settle, say) is deduplicated at once.
function watchDedupe(root) {
  (root || document).querySelectorAll("[data-dedupe]").forEach(function (el) {
    if (!el.dataset.dedupeWatched) {
      el.dataset.dedupeWatched = "1";
      dedupeObserver.observe(el, { childList: true });
      dedupe(el);
    }
  });
}
document.addEventListener("DOMContentLoaded", function () { watchDedupe(); scrollMessages(); });
document.addEventListener("htmx:afterSwap", function () { watchDedupe(); });
document.addEventListener("htmx:oobAfterSwap", function () { watchDedupe(); });
document.addEventListener("htmx:afterSettle", function (evt) {
  watchDedupe();
  // A re-fetched conversation (after a reconnect) opens on its newest message again.
  if (evt.detail.elt && evt.detail.elt.classList && evt.detail.elt.classList.contains("messages")) { scrollMessages(); }
});
document.addEventListener("htmx:oobAfterSwap", function (evt) {
  if (evt.target && evt.target.classList && evt.target.classList.contains("messages")) { scrollMessages(); }
});

// Keep a conversation scrolled to its newest message when one arrives.
function scrollMessages() {
  document.querySelectorAll(".messages").forEach(function (el) { el.scrollTop = el.scrollHeight; });
}
document.addEventListener("htmx:wsAfterMessage", scrollMessages);

// The QR code's countdown: seconds until the worker shows the next code.
setInterval(function () {
  document.querySelectorAll(".qr-countdown[data-expires]").forEach(function (el) {
    var left = Math.max(0, Math.round((new Date(el.dataset.expires) - new Date()) / 1000));
    el.textContent = " (" + left + " s)";
    el.dataset.left = left;
  });
}, 1000);

// Upload progress of a form that names its <progress> with data-progress.
document.addEventListener("htmx:xhr:progress", function (evt) {
  var form = evt.target.closest ? evt.target.closest("[data-progress]") : null;
  if (!form || !evt.detail.lengthComputable) { return; }
  var bar = document.querySelector(form.dataset.progress);
  if (bar) { bar.hidden = false; bar.value = Math.round(evt.detail.loaded / evt.detail.total * 100); }
});

// Reply to a message: fill the reply box's hidden field and show what is quoted.
document.addEventListener("click", function (evt) {
  var btn = evt.target.closest("[data-reply-to]");
  var cancel = evt.target.closest("[data-reply-cancel]");
  var field = document.getElementById("reply-to");
  var shown = document.getElementById("replying");
  if (btn && field) {
    field.value = btn.dataset.replyTo;
    document.getElementById("replying-text").textContent = btn.dataset.replyText;
    shown.hidden = false;
    var input = document.querySelector("#send-form input[name=text]");
    if (input) { input.focus(); }
  } else if (cancel && field) {
    field.value = "";
    shown.hidden = true;
  }
});

// What used to be inline handlers (onchange=, onclick=, onsubmit=), which the Content-Security-Policy forbids.
// A select or switch marked data-submit-on-change submits its form (through htmx when the form is an htmx one).
document.addEventListener("change", function (evt) {
  var el = evt.target;
  if (el.matches && el.matches("[data-submit-on-change]") && el.form) { el.form.requestSubmit(); }
});
// A read-only field marked data-select-on-click (a secret, a link to copy) selects all of itself.
document.addEventListener("click", function (evt) {
  var el = evt.target;
  if (el.matches && el.matches("[data-select-on-click]")) { el.select(); }
});
// A plain form marked data-confirm asks first (htmx forms use hx-confirm).
document.addEventListener("submit", function (evt) {
  var form = evt.target;
  if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) { evt.preventDefault(); }
}, true);

// The reply box: Enter sends, Shift+Enter starts a new line (not while an input method is composing a word).
document.addEventListener("keydown", function (evt) {
  var el = evt.target;
  if (evt.key !== "Enter" || evt.shiftKey || evt.isComposing || !el.matches || !el.matches("[data-enter-sends]")) { return; }
  evt.preventDefault();
  if (el.form && el.value.trim()) { el.form.requestSubmit(); }
});

// The inbox marks the row of the chat open in the right-hand pane (rows pushed live know nothing of it).
function markOpenChat() {
  var pane = document.getElementById("conversation-pane");
  var open = pane && pane.dataset.chat ? "chat-" + pane.dataset.chat + "-row" : "";
  document.querySelectorAll(".chat-row").forEach(function (row) {
    row.classList.toggle("open", row.id === open);
    if (row.id === open) { row.setAttribute("aria-current", "true"); } else { row.removeAttribute("aria-current"); }
  });
}
document.addEventListener("DOMContentLoaded", markOpenChat);
document.addEventListener("htmx:afterSettle", markOpenChat);
document.addEventListener("htmx:oobAfterSwap", markOpenChat);
document.addEventListener("htmx:wsAfterMessage", markOpenChat);

// A message that arrives in the conversation open on screen is read as it arrives: the chat's row loses its
// unread count (after the socket's fragments are in, and only while the tab is being looked at).
function markOpenChatSeen() {
  var pane = document.getElementById("conversation-pane");
  if (!pane || !pane.dataset.seenUrl || document.visibilityState !== "visible") { return; }
  var row = document.getElementById("chat-" + pane.dataset.chat + "-row");
  if (!row || !row.querySelector("[data-unread]")) { return; }
  if (pane.dataset.seenPending) { pane.dataset.seenAgain = "1"; return; }
  pane.dataset.seenPending = "1";
  htmx.ajax("POST", pane.dataset.seenUrl, { target: "#" + row.id, swap: "outerHTML" }).finally(function () {
    var again = pane.dataset.seenAgain;
    delete pane.dataset.seenPending;
    delete pane.dataset.seenAgain;
    // A push that came while this was pending may have brought the unread row back: once more, then. (Not
    // after a failed request alone, which would otherwise be retried without end.)
    if (again) { markOpenChatSeen(); }
  });
}
document.addEventListener("htmx:wsAfterMessage", markOpenChatSeen);
document.addEventListener("visibilitychange", markOpenChatSeen);

// The live socket carries all of an organization's events to every page, so a push may hold fragments for
// elements this page does not have (a number's link card on the inbox, a new message on the Numbers list).
// htmx reports each such fragment as an error (htmx:oobErrorNoTarget); this extension, named beside the ws one
// (hx-ext="ws,live-oob"), drops them before the swap and leaves every fragment whose target is here untouched.
function oobTarget(el) {
  var spec = el.getAttribute("hx-swap-oob") || "true";
  var colon = spec.indexOf(":");
  if (colon > 0) { return spec.slice(colon + 1); }
  return el.id ? "#" + el.id : "";
}
htmx.defineExtension("live-oob", {
  transformResponse: function (text, xhr, elt) {
    if (xhr) { return text; }  // an HTTP answer: its main content has no hx-swap-oob, and is not ours to judge
    var template = document.createElement("template");
    template.innerHTML = text;
    var dropped = false;
    Array.prototype.slice.call(template.content.children).forEach(function (child) {
      var selector = oobTarget(child);
      var present = false;
      try { present = !!selector && document.querySelector(selector) !== null; } catch (e) { present = false; }
      if (!present) { child.remove(); dropped = true; }
    });
    return dropped ? template.innerHTML : text;
  }
});

// An avatar's picture that fails to load (the number's picture link expired, the server away) goes, so the
// initials beneath it show instead of a broken image. "error" does not bubble: listened for while capturing.
document.addEventListener("error", function (evt) {
  var img = evt.target;
  if (img && img.tagName === "IMG" && img.parentElement && img.parentElement.classList.contains("avatar-badge")) {
    img.remove();
  }
}, true);

// A conversation replaced by another under the same eyes (a LID chat merged into its number's: messaging.live)
// keeps the reply being written: taken before the swap, put into the new pane's reply box once it is in.
var carriedDraft = null;
document.addEventListener("htmx:beforeSwap", function (evt) {
  var source = evt.detail.requestConfig ? evt.detail.requestConfig.elt : null;  // (the event is the target's)
  if (!source || !source.matches || !source.matches("[data-carry-draft]")) { return; }
  var box = document.querySelector("#send-form textarea[name=text]");
  var replyTo = document.getElementById("reply-to");
  carriedDraft = box && box.value ? {
    text: box.value,
    replyTo: replyTo ? replyTo.value : "",
    replyText: (document.getElementById("replying-text") || {}).textContent || "",
    focused: document.activeElement === box
  } : null;
});
document.addEventListener("htmx:load", function (evt) {
  if (!carriedDraft || !evt.target.querySelector) { return; }
  var box = evt.target.querySelector("#send-form textarea[name=text]");
  if (!box) { return; }
  var draft = carriedDraft;
  carriedDraft = null;
  box.value = draft.text;
  var replyTo = document.getElementById("reply-to");
  if (draft.replyTo && replyTo) {
    replyTo.value = draft.replyTo;
    document.getElementById("replying-text").textContent = draft.replyText;
    document.getElementById("replying").hidden = false;
  }
  if (draft.focused) { box.focus(); }
});
