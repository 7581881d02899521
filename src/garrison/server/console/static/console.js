// The console's only script of its own (the Content-Security-Policy allows no inline
// script).  Live updates: one EventSource on /live; each message names what changed
// ("stations", "alerts", "jobs", "events"), and the page's regions that show it reload
// themselves (hx-trigger="live-<topic> from:body").  Copy buttons: data-copy="<element id>".
(function () {
  "use strict";
  function startLive() {
    var url = document.body.getAttribute("data-live");
    if (!url || !window.EventSource) { return; }
    var source = new EventSource(url);
    // data-live-state says whether the stream is open (a test waits for it, not a sleep).
    source.addEventListener("hello", function () { document.body.dataset.liveState = "open"; });
    source.addEventListener("error", function () { document.body.dataset.liveState = "reconnecting"; });
    source.addEventListener("changed", function (message) {
      var topics = [];
      try { topics = JSON.parse(message.data).topics || []; } catch (e) { return; }
      topics.forEach(function (topic) {
        document.body.dispatchEvent(new CustomEvent("live-" + topic, { bubbles: true }));
      });
      var stamp = document.getElementById("live-status");
      if (stamp) { stamp.textContent = "Live: updated " + new Date().toLocaleTimeString(); }
    });
    source.addEventListener("ended", function () {
      source.close();
      window.location.assign("/login?message=" + encodeURIComponent("Your session ended; log in again."));
    });
  }
  function copyButtons() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var target = document.getElementById(button.getAttribute("data-copy"));
        if (!target) { return; }
        var text = target.value !== undefined ? target.value : target.textContent;
        if (navigator.clipboard) {
          navigator.clipboard.writeText(text).then(function () { button.textContent = "Copied"; });
        } else if (target.select) {
          target.select();
        }
      });
    });
  }
  // Reloads the live stream triggered are marked: they do not keep the session alive.
  document.addEventListener("htmx:configRequest", function (event) {
    var trigger = event.detail.triggeringEvent;
    if (trigger && trigger.type && trigger.type.indexOf("live-") === 0) {
      event.detail.headers["X-Console-Live"] = "1";
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    startLive();
    copyButtons();
  });
})();
