// Refreshes the overview in place: the server renders the same fragment
// again; nothing else on the page runs script.
(function () {
  "use strict";
  function start() {
    var el = document.getElementById("overview");
    if (!el || !window.fetch) return;
    var url = el.getAttribute("data-refresh");
    setInterval(function () {
      if (document.hidden) return;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) return;
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("overview");
          var cur = document.getElementById("overview");
          if (fresh && cur) cur.replaceWith(fresh);
        })
        .catch(function () {});
    }, 5000);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
