// Small page behaviours htmx does not cover: confirmation is done with hx-confirm; this only
// re-renders a page section after the live socket comes back, so nothing missed while offline is lost.
document.addEventListener("htmx:wsOpen", function (evt) {
  document.querySelectorAll("[data-refresh-on-reconnect]").forEach(function (el) {
    if (el.dataset.wsOpened) { htmx.trigger(el, "refresh"); }
    el.dataset.wsOpened = "1";
  });
});
