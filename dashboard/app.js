// dmd-edge dashboard: reads GET /v1/stats with the admin token (kept in sessionStorage, sent as a bearer header)
// and draws it with uPlot (vendored in dashboard/vendor). Plain browser JavaScript: served as is, no build step.
// `window.dmdDashboard` exposes the state (last report, charts, refresh count) for the browser test.
"use strict";

(() => {
  const TOKEN_KEY = "dmd-edge-admin-token";
  const $ = (id) => document.getElementById(id);
  const state = { report: null, charts: {}, refreshes: 0, errors: 0, timer: null, lastError: null };
  globalThis.dmdDashboard = state;

  const pct = (x) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)}%`);
  const num = (x, digits = 0) =>
    x === null || x === undefined ? "–" : Number(x).toLocaleString("en-US", { maximumFractionDigits: digits });
  const ms = (x) => (x === null || x === undefined ? "–" : `${num(x, x < 10 ? 2 : 1)}`);
  const time = (t) => new Date(t).toISOString().replace("T", " ").slice(0, 19);
  const esc = (s) =>
    String(s ?? "–").replace(
      /[&<>"']/g,
      (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c],
    );

  function setStatus(text, kind) {
    const el = $("status");
    el.textContent = text;
    el.className = `status ${kind ?? ""}`;
  }

  function showLogin(message) {
    $("login").hidden = false;
    $("main").hidden = true;
    $("controls").hidden = true;
    $("loginError").textContent = message ?? "";
    stopTimer();
  }

  function showMain() {
    $("login").hidden = true;
    $("main").hidden = false;
    $("controls").hidden = false;
  }

  function stopTimer() {
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
  }

  function startTimer() {
    stopTimer();
    const s = Number($("refresh").value);
    if (s > 0) state.timer = setInterval(refresh, s * 1000);
  }

  function params() {
    const p = new URLSearchParams({ from: $("window").value, recent: "25" });
    for (const k of ["edgeLocation", "switcherVersion"]) if ($(k).value) p.set(k, $(k).value);
    return p;
  }

  async function refresh() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return showLogin();
    let res;
    try {
      res = await fetch(`/v1/stats?${params()}`, { headers: { authorization: `Bearer ${token}` } });
    } catch (err) {
      state.errors++;
      state.lastError = String(err);
      return setStatus(`cannot reach the service (${err})`, "bad");
    }
    if (res.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      return showLogin("The service refused this token.");
    }
    const body = await res.json().catch(() => null);
    if (!res.ok || !body) {
      state.errors++;
      state.lastError = body?.message ?? `HTTP ${res.status}`;
      return setStatus(`error: ${state.lastError}`, "bad");
    }
    state.report = body;
    state.refreshes++;
    showMain();
    render(body);
    setStatus(`updated ${new Date().toLocaleTimeString()} · queries ${num(body.queryMs, 1)} ms`, "ok");
  }

  function fillSelect(id, values) {
    const sel = $(id);
    const current = sel.value;
    const options = ["", ...values];
    if (current && !options.includes(current)) options.push(current);
    if (sel.options.length === options.length && [...sel.options].every((o, i) => o.value === options[i])) return;
    sel.replaceChildren(...options.map((v) => new Option(v === "" ? "all" : v, v, false, v === current)));
  }

  function render(r) {
    const a = r.active;
    $("active").innerHTML = `serving: edge <b>${esc(a.edge)}</b> · switcher <b>${esc(a.switcher)}</b> ` +
      `(threshold <b>${num(a.threshold, 3)}</b>) · cloud <b>${esc(a.cloud)}</b> · location <b>${
        esc(a.edgeLocation)
      }</b>` +
      ` · window ${time(r.query.fromMs)} → ${time(r.query.toMs)} UTC, buckets of ${
        num(r.query.bucketMs / 60000, 1)
      } min`;
    fillSelect("edgeLocation", r.edgeLocations.map((l) => l.edgeLocation));
    fillSelect("switcherVersion", r.switcherVersions.map((v) => v.switcherVersion));

    const s = r.summary;
    const total = r.latency.find((l) => l.route === "all" && l.stage === "total");
    const cards = [
      ["decisions", num(s.decisions)],
      ["offload rate", pct(s.offloadRate)],
      ["edge/cloud agreement", pct(s.agreementRate)],
      ["shadow rate", pct(s.shadowRate)],
      ["fallback rate", pct(s.fallbackRate)],
      ["cloud calls saved", num(s.savedCloudCalls)],
      ["cloud time saved", s.savedCloudMs === null ? "–" : `${num(s.savedCloudMs / 1000, 1)} s`],
      ["p95 latency", total ? `${ms(total.p95)} ms` : "–"],
    ];
    $("cards").innerHTML = cards.map(([k, v]) =>
      `<div class="card"><div class="v">${v}</div><div class="k">${k}</div></div>`
    )
      .join("");

    const x = r.series.map((b) => b.startMs / 1000);
    const rate = (key) => r.series.map((b) => (b[key] === null ? null : b[key] * 100));
    drawChart("rates", [x, rate("offloadRate"), rate("shadowRate"), rate("fallbackRate")], [
      { label: "offload %", stroke: "#2563eb", width: 2 },
      { label: "shadow %", stroke: "#9333ea" },
      { label: "fallback %", stroke: "#dc2626" },
    ]);
    drawChart("agreement", [x, rate("agreementRate")], [{ label: "agreement %", stroke: "#15803d", width: 2 }]);
    drawChart("latency", [x, r.series.map((b) => b.meanTotalMs)], [{
      label: "mean total ms",
      stroke: "#ea580c",
      width: 2,
    }]);
    drawChart(
      "savings",
      [
        x,
        r.series.map((b) => (b.decisions ? b.savedCloudCalls : null)),
        r.series.map((b) => (b.savedCloudMs === null || !b.decisions ? null : b.savedCloudMs / 1000)),
      ],
      [
        { label: "cloud calls saved", stroke: "#0891b2", width: 2, scale: "calls" },
        { label: "cloud s saved", stroke: "#64748b", scale: "s" },
      ],
      { calls: {}, s: {} },
    );

    table(
      "latency",
      ["route", "stage", "n", "mean", "p50", "p90", "p95", "p99", "max"],
      r.latency.map((l) => [
        l.route,
        l.stage,
        num(l.count),
        ms(l.mean),
        ms(l.p50),
        ms(l.p90),
        ms(l.p95),
        ms(l.p99),
        ms(l.max),
      ]),
    );
    table(
      "fallbacks",
      ["kind", "route", "reason", "cloud error", "count", "rate"],
      r.fallbacks.map((f) => [
        f.kind,
        f.route,
        f.routeReason,
        f.cloudError ?? "–",
        num(f.count),
        pct(f.rate),
      ]),
    );
    table(
      "versions",
      ["switcher", "decisions", "offload", "agreement", "fallback", "calls saved", "threshold"],
      r.switcherVersions.map((v) => [
        v.switcherVersion,
        num(v.decisions),
        pct(v.offloadRate),
        pct(v.agreementRate),
        pct(v.fallbackRate),
        num(v.savedCloudCalls),
        v.minThreshold === v.maxThreshold
          ? num(v.minThreshold, 3)
          : `${num(v.minThreshold, 3)}–${num(v.maxThreshold, 3)}`,
      ]),
    );
    table(
      "locations",
      ["location", "decisions", "offload", "agreement", "fallback", "mean cloud ms", "mean total ms"],
      r.edgeLocations.map((l) => [
        l.edgeLocation,
        num(l.decisions),
        pct(l.offloadRate),
        pct(l.agreementRate),
        pct(l.fallbackRate),
        ms(l.cloudCalls ? l.cloudMsSpent / l.cloudCalls : null),
        ms(l.meanTotalMs),
      ]),
    );
    const byLabel = new Map();
    for (const c of r.labels) byLabel.set(c.label, (byLabel.get(c.label) ?? 0) + c.count);
    const labelRows = [...byLabel].sort((p, q) => q[1] - p[1]).map((
      [label, n],
    ) => [label, num(n), pct(n / (s.decisions || 1))]);
    table("labels", ["label", "answers", "share"], labelRows);
    table(
      "recent",
      ["time (UTC)", "route", "reason", "label", "edge", "cloud", "score", "total ms", "location", "request id"],
      r.recent.map((d) => [
        time(d.createdAt),
        d.route + (d.shadow ? " +shadow" : ""),
        d.routeReason,
        d.label,
        d.edgeLabel,
        d.cloudLabel ?? (d.cloudError ? `error: ${d.cloudError}` : "–"),
        num(d.switcherScore, 3),
        ms(d.totalMs),
        d.edgeLocation,
        d.requestId,
      ]),
    );
  }

  function table(id, head, rows) {
    const el = $(id);
    el.dataset.rows = String(rows.length);
    const th = `<thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead>`;
    const body = rows.length
      ? rows.map((row) => `<tr>${row.map((c) => `<td>${esc(c)}</td>`).join("")}</tr>`).join("")
      : `<tr><td class="empty" colspan="${head.length}">no decisions in this window</td></tr>`;
    el.innerHTML = `${th}<tbody>${body}</tbody>`;
  }

  function drawChart(name, data, series, scales) {
    const el = $(`chart-${name}`);
    const points = data.slice(1).reduce((n, ys) => n + ys.filter((y) => y !== null && y !== undefined).length, 0);
    el.dataset.points = String(points);
    const width = Math.max(300, el.clientWidth || 480);
    const existing = state.charts[name];
    if (existing && existing.series.length === series.length + 1) {
      existing.setData(data);
      if (Math.abs(existing.width - width) > 2) existing.setSize({ width, height: 240 });
      return;
    }
    existing?.destroy();
    const opts = {
      width,
      height: 240,
      series: [{}, ...series.map((s) => ({ spanGaps: false, points: { show: data[0].length < 60 }, ...s }))],
      axes: [
        {},
        { scale: series[0].scale ?? "y" },
        ...(series[1]?.scale && series[1].scale !== series[0].scale
          ? [{ side: 1, scale: series[1].scale, grid: { show: false } }]
          : []),
      ],
      scales: { x: { time: true }, ...(scales ?? {}) },
      legend: { live: true },
    };
    state.charts[name] = new uPlot(opts, data, el);
  }

  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    refresh().then(startTimer);
  });
  $("signout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin();
  });
  for (const id of ["window", "edgeLocation", "switcherVersion"]) $(id).addEventListener("change", refresh);
  $("refresh").addEventListener("change", startTimer);
  addEventListener("resize", () => state.report && render(state.report));

  if (sessionStorage.getItem(TOKEN_KEY)) refresh().then(startTimer);
  else showLogin();
})();
