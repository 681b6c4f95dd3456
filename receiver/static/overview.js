// The overview: one JSON read renders everything; the dashboard stream says when to read
// again (throttled), so counts, charts, tables and the forwarding panel stay live without a
// reload.
(function () {
  "use strict";
  var STATUSES = ["enqueued", "pending", "running", "paused", "completed", "failed"];
  // However busy the receiver, an open overview re-reads at most about once a second.
  var REFRESH_GAP_MS = 1000;
  // A relay's deliveries and retries are not events on the stream, so while destinations are
  // configured the overview also re-reads on a timer: a drained backlog does not look stuck.
  var FORWARDING_REFRESH_MS = 10000;
  var forwardingTimer = null;
  var el = vlm.el;
  var params = new URLSearchParams(window.location.search);
  var filters = { status: params.get("status") || "", domain: params.get("domain") || "", q: params.get("q") || "" };
  var fresh = {}; // ids the stream announced; the next render highlights them once
  var stream = null;

  document.getElementById("filter-status").value = filters.status;
  document.getElementById("filter-q").value = filters.q;
  ["filter-status", "filter-domain"].forEach(function (id) {
    document.getElementById(id).addEventListener("change", function () {
      document.getElementById("filters").requestSubmit();
    });
  });

  function dataUrl() {
    var query = new URLSearchParams();
    Object.keys(filters).forEach(function (name) {
      if (filters[name]) query.set(name, filters[name]);
    });
    var text = query.toString();
    return "/dashboard/data/overview" + (text ? "?" + text : "");
  }

  function renderStatusCounts(counts) {
    var box = vlm.clear(document.getElementById("status-counts"));
    var total = el("a", { className: "card total", href: "/dashboard" }, [
      el("span", { className: "count", text: counts.total }),
      el("span", { className: "label", text: "predictions" }),
    ]);
    total.dataset.status = "total";
    box.appendChild(total);
    STATUSES.forEach(function (status) {
      var card = el("a", { className: "card", href: "/dashboard?status=" + status }, [
        el("span", { className: "count", text: counts.by_status[status] || 0 }),
        vlm.badge(status),
      ]);
      card.dataset.status = status;
      box.appendChild(card);
    });
  }

  function domainLabel(domain) {
    return domain === null || domain === undefined ? "(none)" : domain;
  }

  function renderDomains(counts) {
    var body = vlm.clear(document.querySelector("#domain-counts tbody"));
    counts.by_domain.forEach(function (row) {
      var link = row.domain === null ? el("span", { text: domainLabel(null) })
        : el("a", { text: row.domain, href: "/dashboard?domain=" + encodeURIComponent(row.domain) });
      var tr = el("tr", {}, [el("td", {}, [link]), el("td", { className: "num", text: row.count })]);
      tr.dataset.domain = domainLabel(row.domain);
      body.appendChild(tr);
    });
    document.getElementById("domains-empty").hidden = counts.by_domain.length > 0;
    // The domain filter offers every domain seen, and keeps the chosen one even at zero.
    var select = document.getElementById("filter-domain");
    var seen = {};
    vlm.clear(select).appendChild(el("option", { text: "all" }));
    select.firstChild.value = "";
    counts.by_domain.concat(filters.domain ? [{ domain: filters.domain }] : []).forEach(function (row) {
      if (row.domain === null || seen[row.domain]) return;
      seen[row.domain] = true;
      var option = el("option", { text: row.domain });
      option.value = row.domain;
      select.appendChild(option);
    });
    select.value = filters.domain;
  }

  function renderCredits(credits) {
    var body = vlm.clear(document.querySelector("#credits tbody"));
    credits.forEach(function (row) {
      var tr = el("tr", {}, [
        el("td", { text: domainLabel(row.domain) }),
        el("td", { className: "num", text: row.today }),
        el("td", { className: "num", text: row.last_7_days }),
      ]);
      tr.dataset.domain = domainLabel(row.domain);
      body.appendChild(tr);
    });
    document.getElementById("credits-empty").hidden = credits.length > 0;
  }

  function renderPerMinute(series) {
    var chart = vlm.clear(document.getElementById("per-minute"));
    var peak = 1;
    var accepted = 0;
    var refused = 0;
    series.forEach(function (m) {
      peak = Math.max(peak, m.accepted + m.refused);
      accepted += m.accepted;
      refused += m.refused;
    });
    var width = 600 / series.length;
    series.forEach(function (m, index) {
      var x = index * width + 1;
      var okHeight = (m.accepted / peak) * 116;
      var badHeight = (m.refused / peak) * 116;
      var group = vlm.svg("g", {});
      var title = vlm.svg("title", {});
      title.textContent = m.minute + ": " + m.accepted + " accepted, " + m.refused + " refused";
      group.appendChild(title);
      group.appendChild(vlm.svg("rect", { class: "bar-bg", x: x, y: 0, width: width - 2, height: 120 }));
      group.appendChild(vlm.svg("rect", { class: "bar accepted", x: x, y: 120 - okHeight, width: width - 2, height: okHeight }));
      group.appendChild(vlm.svg("rect", { class: "bar refused", x: x, y: 120 - okHeight - badHeight, width: width - 2, height: badHeight }));
      chart.appendChild(group);
    });
    var summary = document.getElementById("minute-summary");
    summary.textContent = (accepted + refused) + " callbacks in the last hour, " + refused + " refused";
    summary.dataset.total = String(accepted + refused);
    summary.dataset.refused = String(refused);
  }

  function takeFresh(id) {
    var was = fresh[id] === true;
    delete fresh[id];
    return was;
  }

  function renderPredictions(predictions) {
    var body = vlm.clear(document.querySelector("#predictions tbody"));
    predictions.forEach(function (p) {
      var ours = p.vlmhooks || {};
      var usage = p.usage || {};
      var verdict = ours.schema_valid === null || ours.schema_valid === undefined ? "" : ours.schema_valid ? "valid" : "invalid";
      var tr = el("tr", { className: takeFresh(p.id) ? "fresh" : "" }, [
        el("td", {}, [vlm.predictionLink(p.id)]),
        el("td", {}, [vlm.badge(p.status)]),
        el("td", { text: p.domain }),
        el("td", {}, [vlm.time(p.created_at)]),
        el("td", {}, [vlm.time(p.completed_at)]),
        el("td", { className: "id", text: ours.submission_id }),
        el("td", { className: "num", text: usage.credits_used }),
        el("td", { className: verdict ? "schema-" + verdict : "", text: verdict }),
      ]);
      tr.dataset.id = p.id;
      tr.dataset.status = p.status;
      body.appendChild(tr);
    });
    document.getElementById("predictions-empty").hidden = predictions.length > 0;
  }

  function renderRefused(refused) {
    var body = vlm.clear(document.querySelector("#refused tbody"));
    refused.forEach(function (d) {
      var tr = el("tr", { className: takeFresh("delivery:" + d.id) ? "fresh" : "" }, [
        el("td", {}, [vlm.time(d.received_at)]),
        el("td", { className: "num", text: d.http_status }),
        el("td", { className: "reason", text: d.reason }),
        el("td", {}, [vlm.predictionLink(d.prediction_id)]),
        el("td", { className: "id", text: d.submission_id }),
      ]);
      tr.dataset.deliveryId = String(d.id);
      body.appendChild(tr);
    });
    document.getElementById("refused-empty").hidden = refused.length > 0;
  }

  function filterText(wanted) {
    var parts = [];
    if (wanted && wanted.events) parts.push("events=" + wanted.events.join(","));
    if (wanted && wanted.domain) parts.push("domain=" + wanted.domain);
    return parts.length ? parts.join(" ") : "all";
  }

  function ageText(seconds) {
    if (seconds === null || seconds === undefined) return "";
    if (seconds < 120) return Math.round(seconds) + " s";
    if (seconds < 7200) return Math.round(seconds / 60) + " min";
    return Math.round(seconds / 3600) + " h";
  }

  function renderForwarding(forwarding) {
    var destinations = (forwarding && forwarding.destinations) || [];
    var body = vlm.clear(document.querySelector("#forwarding tbody"));
    destinations.forEach(function (d) {
      // A 410 stops all delivery and a dead letter is a change given up on: both need an
      // operator (POST .../retry), so they are what the row must make impossible to miss.
      var warn = !d.enabled || d.dead_letters > 0;
      var state = d.enabled ? "enabled" : "disabled" + (d.disabled_reason ? ": " + d.disabled_reason : "");
      if (!d.configured) state += " (no longer configured)";
      var error = el("td", { className: "reason", text: d.last_error || "" });
      if (d.last_error_at) error.title = d.last_error_at;
      var tr = el("tr", { className: warn ? "warning" : "" }, [
        el("td", { className: "target", text: d.target }),
        el("td", { text: d.kind }),
        el("td", { text: filterText(d.filters) }),
        el("td", { className: "state", text: state }),
        el("td", { className: "num backlog", text: d.backlog }),
        el("td", { className: "num", text: ageText(d.oldest_pending_age_seconds) }),
        el("td", { className: "num dead-letters", text: d.dead_letters }),
        error,
        el("td", {}, [vlm.time(d.last_delivered_at)]),
      ]);
      tr.dataset.destination = d.id;
      tr.dataset.enabled = String(d.enabled);
      body.appendChild(tr);
    });
    document.getElementById("forwarding-empty").hidden = destinations.length > 0;
    if (destinations.length > 0 && forwardingTimer === null) {
      forwardingTimer = window.setInterval(function () { refresh(); }, FORWARDING_REFRESH_MS);
    } else if (destinations.length === 0 && forwardingTimer !== null) {
      window.clearInterval(forwardingTimer);
      forwardingTimer = null;
    }
  }

  function onEvent(type, data) {
    fresh[type === "delivery.rejected" ? "delivery:" + data.id : data.id] = true;
    refresh();
  }

  function load() {
    return vlm.fetchJSON(dataUrl()).then(function (overview) {
      renderStatusCounts(overview.counts);
      renderDomains(overview.counts);
      renderCredits(overview.credits);
      renderPerMinute(overview.callbacks_per_minute);
      renderPredictions(overview.predictions);
      renderRefused(overview.refused);
      renderForwarding(overview.forwarding);
      // Opened after the first read, from the positions read before it: nothing committed
      // in between is missed.
      if (!stream) stream = vlm.openStream(overview.positions, onEvent);
    });
  }

  var refresh = vlm.throttled(load, REFRESH_GAP_MS);
  refresh();
})();
