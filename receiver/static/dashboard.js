// Live updates for the dashboard: one EventSource on /v1/events, one row per prediction.
(function () {
  "use strict";
  var MAX_ROWS = 200;
  var STATUSES = ["enqueued", "pending", "running", "paused", "completed", "failed"];
  var body = document.querySelector("#predictions tbody");
  var live = document.getElementById("live");
  // EventSource cannot send an Authorization header, so the key travels as ?access_token=.
  var token = new URLSearchParams(window.location.search).get("access_token");
  var url = "/v1/events" + (token ? "?access_token=" + encodeURIComponent(token) : "");

  function cell(text, className) {
    var td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text === null || text === undefined ? "" : String(text);
    return td;
  }

  function badge(status) {
    var td = document.createElement("td");
    var span = document.createElement("span");
    span.className = "badge status-" + status;
    span.textContent = status;
    td.appendChild(span);
    return td;
  }

  function schemaVerdict(ours) {
    if (!ours || ours.schema_valid === null || ours.schema_valid === undefined) return "";
    return ours.schema_valid ? "valid" : "invalid";
  }

  function render(prediction) {
    var ours = prediction.vlmhooks || {};
    var tr = document.createElement("tr");
    tr.dataset.id = prediction.id;
    tr.appendChild(cell(prediction.id, "id"));
    tr.appendChild(badge(prediction.status));
    tr.appendChild(cell(prediction.domain));
    tr.appendChild(cell(prediction.created_at));
    tr.appendChild(cell(prediction.completed_at));
    tr.appendChild(cell(ours.submission_id, "id"));
    tr.appendChild(cell(schemaVerdict(ours)));
    tr.className = "fresh";
    return tr;
  }

  function upsert(event) {
    var prediction = JSON.parse(event.data);
    var row = render(prediction);
    var existing = Array.prototype.find.call(body.rows, function (r) {
      return r.dataset.id === prediction.id;
    });
    if (existing) {
      body.replaceChild(row, existing);
    } else {
      body.insertBefore(row, body.firstChild);
      while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
    }
  }

  var source = new EventSource(url);
  STATUSES.forEach(function (status) {
    source.addEventListener("prediction." + status, upsert);
  });
  source.onopen = function () {
    live.dataset.state = "open";
    live.textContent = "live";
  };
  source.onerror = function () {
    live.dataset.state = "error";
    live.textContent = "reconnecting…";
  };
})();
