// The dashboard's only script: follow the page's event stream and swap in the fragments it
// sends. Everything shown is rendered (and escaped) by the server; this file only places it.
(function () {
  "use strict";

  var streamUrl = document.body.getAttribute("data-stream");
  var live = document.getElementById("live");
  var updates = 0;

  function setLive(state, text) {
    if (live) {
      live.setAttribute("data-state", state);
      live.textContent = text;
    }
  }

  // A new row goes where it sorts (an overview row by its student id, a metric's row by its
  // key: the server sends the order, and the rows carry theirs), so the table stays in order.
  function insertRow(parent, html, order) {
    var rows = parent.children;
    for (var i = 0; i < rows.length; i++) {
      var other = rows[i].getAttribute("data-order") || rows[i].getAttribute("data-student");
      if (other > order) {
        rows[i].insertAdjacentHTML("beforebegin", html);
        return;
      }
    }
    parent.insertAdjacentHTML("beforeend", html);
  }

  // An empty fragment removes its element: a row that left the page (the server decides which
  // students a page of the overview shows, and says when one enters or leaves it).
  function apply(patch) {
    var element = document.getElementById(patch.id);
    if (element && patch.html === "") {
      element.remove();
    } else if (element) {
      element.outerHTML = patch.html;
    } else if (patch.parent && patch.html !== "") {
      var parent = document.getElementById(patch.parent);
      if (parent) {
        insertRow(parent, patch.html, patch.order || patch.id.replace(/^row-/, ""));
      }
    }
  }

  if (!streamUrl || !window.EventSource) {
    setLive("off", "not live: reload to update");
    return;
  }
  var source = new EventSource(streamUrl);
  source.addEventListener("open", function () {
    setLive("on", "live");
  });
  source.addEventListener("error", function () {
    setLive("off", source.readyState === EventSource.CLOSED ? "disconnected: reload" : "reconnecting");
  });
  source.addEventListener("patch", function (event) {
    apply(JSON.parse(event.data));
    updates += 1;
    document.body.setAttribute("data-updates", String(updates));
  });
})();
