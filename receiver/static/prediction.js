// One prediction's detail page, read from /dashboard/data/predictions/{id} and read again
// when the dashboard stream says this prediction (or a delivery for it) changed.
(function () {
  "use strict";
  var el = vlm.el;
  var REFRESH_GAP_MS = 300;
  var segments = window.location.pathname.split("/");
  var predictionId = decodeURIComponent(segments[segments.length - 1]);
  var submissionId = null;
  var responseValue = null;
  var stream = null;

  document.getElementById("prediction-id").textContent = predictionId;
  document.title = "vlmhooks · " + predictionId;

  function renderHeader(history) {
    var p = history.prediction;
    var badge = vlm.clear(document.getElementById("status-badge"));
    badge.appendChild(vlm.badge(p ? p.status : "not stored"));
    document.getElementById("never-stored").hidden = !!p;
    document.getElementById("failure").hidden = !history.failure;
    document.getElementById("failure-text").textContent = history.failure || "";
  }

  function renderSummary(p) {
    var ours = p.vlmhooks || {};
    vlm.facts(document.getElementById("summary"), [
      ["domain", p.domain],
      ["created", vlm.time(p.created_at)],
      ["completed", vlm.time(p.completed_at)],
      ["first received", vlm.time(ours.received_at)],
      ["last changed", vlm.time(ours.updated_at)],
      ["source", ours.source],
      ["changes stored", ours.delivery_count],
    ]);
  }

  function renderTimeline(timeline) {
    var list = vlm.clear(document.getElementById("timeline"));
    timeline.forEach(function (step) {
      list.appendChild(el("li", {}, [vlm.badge(step.status), document.createTextNode(" "), vlm.time(step.at)]));
    });
    if (!timeline.length) list.appendChild(el("li", { className: "muted", text: "No status change recorded." }));
  }

  function renderUsage(usage) {
    var dl = document.getElementById("usage");
    if (!usage) {
      vlm.facts(dl, [["usage", "not reported"]]);
      return;
    }
    var pairs = [
      ["credits used", usage.credits_used],
      ["elements processed", usage.elements_processed],
      ["element type", usage.element_type],
    ];
    Object.keys(usage).forEach(function (key) {
      if (["credits_used", "elements_processed", "element_type"].indexOf(key) < 0) {
        pairs.push([key, typeof usage[key] === "object" ? JSON.stringify(usage[key]) : usage[key]]);
      }
    });
    vlm.facts(dl, pairs);
  }

  function renderSchema(ours) {
    var verdict = document.getElementById("schema-verdict");
    var errors = vlm.clear(document.getElementById("schema-errors"));
    if (ours.schema_valid === null || ours.schema_valid === undefined) {
      verdict.textContent = "No json_schema was given with the submission: nothing to check.";
      verdict.className = "muted";
    } else if (ours.schema_valid) {
      verdict.textContent = "The response matches the submission's json_schema.";
      verdict.className = "schema-valid";
    } else {
      verdict.textContent = "The response does not match the submission's json_schema (the data is kept).";
      verdict.className = "schema-invalid";
    }
    (ours.schema_errors || []).forEach(function (message) {
      errors.appendChild(el("li", { text: message }));
    });
  }

  function renderResponse(value) {
    responseValue = value;
    var box = vlm.clear(document.getElementById("response"));
    box.appendChild(vlm.json(value));
    var raw = document.getElementById("response-text");
    if (!raw.hidden) raw.textContent = JSON.stringify(value, null, 2);
  }

  function renderSubmission(submission) {
    document.getElementById("submission-missing").hidden = !!submission;
    var dl = document.getElementById("submission");
    var schemaBox = vlm.clear(document.getElementById("submission-schema"));
    document.getElementById("submission-schema-title").hidden = !(submission && submission.json_schema);
    if (!submission) {
      vlm.clear(dl);
      return;
    }
    submissionId = submission.id;
    vlm.facts(dl, [
      ["id", submission.id],
      ["domain", submission.domain],
      ["prompt", submission.prompt],
      ["images", submission.image_count],
      ["created", vlm.time(submission.created_at)],
      ["sent", vlm.time(submission.sent_at)],
      ["status", submission.status],
      ["error", submission.error],
      ["callback URL", submission.callback_url],
    ]);
    if (submission.json_schema) schemaBox.appendChild(vlm.json(submission.json_schema, 3));
  }

  function headerList(headers) {
    var list = el("ul", { className: "headers" });
    Object.keys(headers || {}).sort().forEach(function (name) {
      list.appendChild(el("li", {}, [el("span", { className: "header-name", text: name + ": " }), el("span", { text: headers[name] })]));
    });
    return list;
  }

  function bodyButton(delivery, tr) {
    if (!delivery.body_size) return el("span", { className: "muted", text: "none" });
    var button = el("button", { type: "button", className: "show-body", text: "Show raw body (" + delivery.body_size + " B)" });
    var shown = null;
    button.addEventListener("click", function () {
      if (shown) {
        shown.remove();
        shown = null;
        button.textContent = "Show raw body (" + delivery.body_size + " B)";
        return;
      }
      button.disabled = true;
      vlm.fetchJSON("/dashboard/data/deliveries/" + encodeURIComponent(delivery.id)).then(function (full) {
        var note = full.body_encoding === "base64" ? "not UTF-8; shown as base64" : "";
        if (full.body_truncated) note = (note ? note + "; " : "") + "truncated to the stored cap";
        var pre = el("pre", { className: "raw", text: full.body });
        var cell = el("td", {}, [note ? el("p", { className: "muted", text: note }) : null, pre]);
        cell.colSpan = 7;
        shown = el("tr", { className: "raw-body" }, [cell]);
        tr.after(shown);
        button.textContent = "Hide raw body";
      }, function (error) {
        button.textContent = "Could not load: " + error.message;
      }).then(function () {
        button.disabled = false;
      });
    });
    return button;
  }

  function renderDeliveries(deliveries) {
    var body = vlm.clear(document.querySelector("#deliveries tbody"));
    deliveries.forEach(function (d) {
      var tr = el("tr", { className: "verdict-" + vlm.text(d.verdict) });
      tr.dataset.deliveryId = String(d.id);
      [
        el("td", {}, [vlm.time(d.received_at)]),
        el("td", {}, [el("span", { className: "verdict", text: d.verdict })]),
        el("td", { className: "num", text: d.http_status }),
        el("td", { className: "reason", text: d.reason }),
        el("td", {}, [headerList(d.headers)]),
        el("td", { className: "hash", text: d.body_sha256, title: d.body_sha256 }),
        el("td", {}, [bodyButton(d, tr)]),
      ].forEach(function (cell) { tr.appendChild(cell); });
      body.appendChild(tr);
    });
  }

  function onEvent(type, data) {
    var mine = type === "delivery.rejected"
      ? data.prediction_id === predictionId || (submissionId !== null && data.submission_id === submissionId)
      : data.id === predictionId;
    if (mine) refresh();
  }

  function load() {
    var url = "/dashboard/data/predictions/" + encodeURIComponent(predictionId);
    return vlm.fetchJSON(url).then(function (history) {
      // Never stored (only refused deliveries name it): an empty shell around the history.
      var p = history.prediction || { vlmhooks: {}, usage: null, response: null };
      renderHeader(history);
      renderSummary(p);
      renderTimeline(history.timeline);
      renderUsage(p.usage);
      renderSchema(p.vlmhooks || {});
      renderResponse(p.response);
      renderSubmission(history.submission);
      renderDeliveries(history.deliveries);
      if (!stream) stream = vlm.openStream(history.positions, onEvent);
    });
  }

  document.getElementById("expand-all").addEventListener("click", function () {
    vlm.setAllOpen(document.getElementById("response"), true);
  });
  document.getElementById("collapse-all").addEventListener("click", function () {
    vlm.setAllOpen(document.getElementById("response"), false);
  });
  document.getElementById("response-as-text").addEventListener("click", function (event) {
    var raw = document.getElementById("response-text");
    raw.hidden = !raw.hidden;
    document.getElementById("response").hidden = !raw.hidden;
    raw.textContent = raw.hidden ? "" : JSON.stringify(responseValue, null, 2);
    event.target.textContent = raw.hidden ? "Show as text" : "Show as tree";
  });

  // Replay: a dry run first, shown per delivery; the real replay only on "Confirm".
  var REPLAY_ORDER = ["stored", "updated", "duplicate", "stale", "refused"];
  var replayUrl = "/dashboard/predictions/" + encodeURIComponent(predictionId) + "/replay";
  var replayStart = document.getElementById("replay-start");
  var replayConfirm = document.getElementById("replay-confirm");
  var replayCancel = document.getElementById("replay-cancel");

  // A dry run changed nothing: say what the replay would do, not what it did.
  var WOULD = { stored: "would store", updated: "would update" };

  function outcomeLabel(outcome, dryRun) {
    return dryRun && WOULD[outcome] ? WOULD[outcome] : outcome;
  }

  function replaySummary(text, kind) {
    var summary = document.getElementById("replay-summary");
    summary.textContent = text;
    summary.dataset.kind = kind;
    summary.hidden = !text;
  }

  function renderReplay(report) {
    var table = document.getElementById("replay-results");
    var body = vlm.clear(table.querySelector("tbody"));
    report.results.forEach(function (r) {
      var tr = el("tr", { className: "outcome-" + vlm.text(r.outcome) });
      tr.dataset.deliveryId = String(r.delivery_id);
      [
        el("td", { className: "num", text: r.delivery_id }),
        el("td", { text: r.original_verdict }),
        el("td", { className: "outcome", text: outcomeLabel(r.outcome, report.dry_run) }),
        el("td", { text: r.status }),
        el("td", { className: "reason", text: r.reason }),
      ].forEach(function (cell) { tr.appendChild(cell); });
      body.appendChild(tr);
    });
    table.hidden = false;
    var parts = REPLAY_ORDER.filter(function (o) { return report.counts[o]; }).map(function (o) {
      return report.counts[o] + " " + outcomeLabel(o, report.dry_run);
    });
    var text = (report.dry_run ? "Dry run, nothing changed: " : "Replayed: ") + parts.join(", ") + ".";
    if (report.next_after_id !== null) text += " More deliveries remain: replay them with the API (after_id " + report.next_after_id + ").";
    var replayable = report.results.some(function (r) { return r.outcome !== "refused"; });
    if (report.dry_run && !replayable) text += " Nothing to replay.";
    replaySummary(text, "info");
    replayConfirm.hidden = !(report.dry_run && replayable);
    replayCancel.hidden = !report.dry_run;
  }

  function replay(dryRun) {
    replayStart.disabled = replayConfirm.disabled = true;
    replaySummary(dryRun ? "Running a dry run…" : "Replaying…", "info");
    return vlm.postJSON(replayUrl, { dry_run: dryRun }).then(function (report) {
      renderReplay(report);
      if (!dryRun) refresh(); // the timeline and deliveries now include the replay
    }, function (error) {
      replaySummary("Replay failed: " + vlm.text(error.message), "error");
      replayConfirm.hidden = replayCancel.hidden = true;
    }).then(function () {
      replayStart.disabled = replayConfirm.disabled = false;
    });
  }

  replayStart.addEventListener("click", function () { replay(true); });
  replayConfirm.addEventListener("click", function () { replay(false); });
  replayCancel.addEventListener("click", function () {
    replayConfirm.hidden = replayCancel.hidden = true;
    document.getElementById("replay-results").hidden = true;
    replaySummary("", "info");
  });

  var refresh = vlm.throttled(load, REFRESH_GAP_MS);
  refresh();
})();
