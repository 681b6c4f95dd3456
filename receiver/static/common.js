// Shared by the dashboard pages. Everything that comes from the network is written into the
// page as text (textContent, attributes set one by one): a stored response holding HTML
// shows that HTML, it never runs. No markup is ever parsed from a string.
var vlm = (function () {
  "use strict";
  var SIGN_IN = "/dashboard/sign-in";
  var SVG = "http://www.w3.org/2000/svg";

  function text(value) {
    return value === null || value === undefined ? "" : String(value);
  }

  // el("td", {className: "id", text: id, title: ..., href: ...}, [children])
  function el(tag, options, children) {
    var node = document.createElement(tag);
    var o = options || {};
    if (o.className) node.className = o.className;
    if (o.text !== undefined) node.textContent = text(o.text);
    if (o.title) node.title = o.title;
    if (o.href) node.href = o.href;
    if (o.type) node.type = o.type;
    (children || []).forEach(function (child) {
      if (child) node.appendChild(child);
    });
    return node;
  }

  function svg(tag, attributes) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attributes || {}).forEach(function (name) {
      node.setAttribute(name, String(attributes[name]));
    });
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function badge(status) {
    return el("span", { className: "badge status-" + text(status).replace(/[^a-z]/g, ""), text: status });
  }

  // "2026-01-01T10:11:12.345Z" -> "2026-01-01 10:11:12" (UTC; the full value in the tooltip).
  function time(iso) {
    var node = el("time", { text: iso ? text(iso).replace("T", " ").replace(/(\.\d+)?Z$/, "") : "" });
    if (iso) {
      node.dateTime = text(iso);
      node.title = text(iso);
    }
    return node;
  }

  function predictionLink(id) {
    if (id === null || id === undefined) return el("span", { className: "muted", text: "—" });
    // A "/" cannot travel in one path segment (the API's GET /v1/predictions/{id} has the
    // same limit): show such an id, do not link to a page that cannot exist.
    if (String(id).indexOf("/") >= 0) return el("span", { className: "id", text: id });
    return el("a", { className: "id", text: id, href: "/dashboard/predictions/" + encodeURIComponent(id) });
  }

  function signInAgain(reason) {
    var next = window.location.pathname + window.location.search;
    window.location.assign(SIGN_IN + "?error=" + encodeURIComponent(reason) + "&next=" + encodeURIComponent(next));
  }

  // Fetch JSON; a 401 means the session ended: back to the form, then here again.
  function requestJSON(url, init) {
    return fetch(url, init).then(
      function (response) {
        if (response.status === 401) {
          signInAgain("expired");
          return new Promise(function () {}); // the page is going away
        }
        return response.json().then(function (body) {
          if (!response.ok) {
            var error = new Error(text(body && (body.detail || body.title)) || "HTTP " + response.status);
            error.status = response.status;
            throw error;
          }
          return body;
        });
      }
    );
  }

  function fetchJSON(url) {
    return requestJSON(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  }

  // POST a JSON body; the cookie authenticates it, the browser's Sec-Fetch-Site proves the
  // page is ours (the server refuses cross-site posts).
  function postJSON(url, body) {
    return requestJSON(url, {
      method: "POST",
      headers: { Accept: "application/json", "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify(body),
    });
  }

  function showError(error) {
    var node = document.getElementById("load-error");
    if (!node) return;
    node.textContent = error ? text(error.message || error) : "";
    node.hidden = !error;
  }

  // Run `load` now, and again after it if asked meanwhile; at most once per `gap` ms.
  function throttled(load, gap) {
    var busy = false;
    var pending = false;
    function run() {
      busy = true;
      pending = false;
      Promise.resolve()
        .then(load)
        .then(function () { showError(null); }, showError)
        .then(function () {
          window.setTimeout(function () {
            busy = false;
            if (pending) run();
          }, gap);
        });
    }
    return function () {
      if (busy) pending = true;
      else run();
    };
  }

  // The dashboard stream; the session cookie authenticates it (no key in the URL).
  function openStream(positions, onEvent) {
    var live = document.getElementById("live");
    var url = "/dashboard/events?after=" + encodeURIComponent(positions.event_seq) +
      "&after_delivery=" + encodeURIComponent(positions.delivery_id);
    var source = new EventSource(url);
    function handle(event) {
      onEvent(event.type, JSON.parse(event.data));
    }
    ["enqueued", "pending", "running", "paused", "completed", "failed"].forEach(function (status) {
      source.addEventListener("prediction." + status, handle);
    });
    source.addEventListener("delivery.rejected", handle);
    source.onopen = function () {
      live.dataset.state = "open";
      live.textContent = "live";
    };
    source.onerror = function () {
      live.dataset.state = "error";
      live.textContent = source.readyState === EventSource.CLOSED ? "offline" : "reconnecting…";
    };
    return source;
  }

  // A collapsible, pretty-printed view of any JSON value. Containers deeper than `open`
  // start closed and are built on first opening, so a large response renders at once.
  function json(value, open) {
    return jsonNode(value, 0, open === undefined ? 2 : open);
  }

  function scalar(value) {
    var kind = value === null ? "null" : typeof value;
    return el("span", { className: "json-" + kind, text: kind === "string" ? JSON.stringify(value) : String(value) });
  }

  function jsonNode(value, depth, open) {
    if (value === null || typeof value !== "object") return scalar(value);
    var isArray = Array.isArray(value);
    var keys = isArray ? value.map(function (_, index) { return index; }) : Object.keys(value);
    if (!keys.length) return el("span", { className: "json-empty", text: isArray ? "[]" : "{}" });
    var details = el("details", { className: "json-node" });
    var label = isArray ? "[ " + keys.length + (keys.length === 1 ? " item ]" : " items ]")
      : "{ " + keys.length + (keys.length === 1 ? " key }" : " keys }");
    details.appendChild(el("summary", { text: label }));
    var built = false;
    function build() {
      if (built) return;
      built = true;
      var list = el("ul");
      keys.forEach(function (key) {
        var item = el("li");
        item.appendChild(el("span", { className: isArray ? "json-index" : "json-key", text: isArray ? key : JSON.stringify(key) }));
        item.appendChild(document.createTextNode(": "));
        item.appendChild(jsonNode(value[key], depth + 1, open));
        list.appendChild(item);
      });
      details.appendChild(list);
    }
    details.addEventListener("toggle", function () {
      if (details.open) build();
    });
    details.vlmBuild = build; // for "expand all", which cannot wait for toggle events
    if (depth < open) {
      build();
      details.open = true;
    }
    return details;
  }

  function setAllOpen(container, open) {
    // Opening builds children, which may add more closed nodes: repeat until none is left.
    for (var pass = 0; pass < 64; pass++) {
      var nodes = container.querySelectorAll(open ? "details:not([open])" : "details[open]");
      if (!nodes.length) return;
      nodes.forEach(function (node) {
        if (open && node.vlmBuild) node.vlmBuild();
        node.open = open;
      });
      if (!open) return;
    }
  }

  function facts(dl, pairs) {
    clear(dl);
    pairs.forEach(function (pair) {
      dl.appendChild(el("dt", { text: pair[0] }));
      var dd = el("dd");
      if (pair[1] instanceof Node) dd.appendChild(pair[1]);
      else dd.textContent = pair[1] === null || pair[1] === undefined || pair[1] === "" ? "—" : String(pair[1]);
      dl.appendChild(dd);
    });
  }

  return {
    badge: badge,
    clear: clear,
    el: el,
    facts: facts,
    fetchJSON: fetchJSON,
    json: json,
    openStream: openStream,
    postJSON: postJSON,
    predictionLink: predictionLink,
    setAllOpen: setAllOpen,
    svg: svg,
    text: text,
    throttled: throttled,
    time: time,
  };
})();
