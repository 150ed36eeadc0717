// campaignflow console: live pages without a framework. A page whose <main> has data-refresh="N"
// fetches itself every N seconds and swaps each [data-live] element (by id) for its new version;
// an element being edited (focused, or a field typed into) is left alone. Polling stops when the
// new page has no data-refresh (a run that ended) or the tab is hidden (it resumes when shown).
(function () {
  "use strict";
  var main = document.querySelector("main[data-refresh]");
  document.addEventListener("input", function (event) {
    if (event.target && event.target.setAttribute) { event.target.setAttribute("data-dirty", "1"); }
  });
  if (!main) { return; }
  var seconds = parseFloat(main.getAttribute("data-refresh")) || 5;

  function busy(element) {
    var active = document.activeElement;
    if (active && active !== document.body && element.contains(active)) { return true; }
    return element.querySelector("[data-dirty]") !== null;
  }

  function swap(fresh) {
    document.querySelectorAll("[data-live][id]").forEach(function (element) {
      var next = fresh.getElementById(element.id);
      if (!next || busy(element)) { return; }
      var open = Array.prototype.map.call(element.querySelectorAll("details[open][id]"), function (d) { return d.id; });
      element.replaceWith(document.importNode(next, true));
      open.forEach(function (id) { var d = document.getElementById(id); if (d) { d.open = true; } });
    });
    var again = fresh.querySelector("main[data-refresh]");
    return again ? parseFloat(again.getAttribute("data-refresh")) || seconds : 0;
  }

  function tick() {
    if (document.hidden) { setTimeout(tick, seconds * 1000); return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok && !response.redirected ? response.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var next = swap(new DOMParser().parseFromString(html, "text/html"));
        if (next > 0) { setTimeout(tick, next * 1000); } else { main.removeAttribute("data-refresh"); }
      })
      .catch(function () { setTimeout(tick, seconds * 2000); });
  }
  setTimeout(tick, seconds * 1000);
}());
