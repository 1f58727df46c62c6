// dmd-edge dashboard: reads GET /v1/stats with the admin token (kept in sessionStorage, sent as a bearer header)
// and draws it with uPlot (vendored in dashboard/vendor). Plain browser JavaScript: served as is, no build step.
// `window.dmdDashboard` exposes the state (last report, charts, refresh count) for the browser test.
"use strict";

(() => {
  const TOKEN_KEY = "dmd-edge-admin-token";
  /** The windows offered, shortest first, with the bucket each asks for (60 to 120 buckets per window). */
  const WINDOWS = [
    { value: "15m", ms: 15 * 60_000, bucket: "10s" },
    { value: "1h", ms: 3600_000, bucket: "1m" },
    { value: "6h", ms: 6 * 3600_000, bucket: "5m" },
    { value: "24h", ms: 24 * 3600_000, bucket: "15m" },
    { value: "7d", ms: 7 * 86_400_000, bucket: "2h" },
    { value: "30d", ms: 30 * 86_400_000, bucket: "6h" },
  ];
  /** A series with at most this many values is drawn as points joined by lines; denser ones as lines only. */
  const POINTS_UP_TO = 40;
  const CHART_HEIGHT = 240;
  const $ = (id) => document.getElementById(id);
  const state = { report: null, charts: {}, refreshes: 0, errors: 0, timer: null, lastError: null };
  globalThis.dmdDashboard = state;

  const pct = (x) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)}%`);
  const num = (x, digits = 0) =>
    x === null || x === undefined ? "–" : Number(x).toLocaleString("en-US", { maximumFractionDigits: digits });
  const ms = (x) => (x === null || x === undefined ? "–" : `${num(x, x < 10 ? 2 : 1)}`);
  const seconds = (t) => (t < 1000 ? `${ms(t)} ms` : `${num(t / 1000, 1)} s`);
  const time = (t) => new Date(t).toISOString().replace("T", " ").slice(0, 19);
  const duration = (t) =>
    t >= 86_400_000
      ? `${num(t / 86_400_000, 1)} d`
      : t >= 3600_000
      ? `${num(t / 3600_000, 1)} h`
      : t >= 60_000
      ? `${num(t / 60_000, 1)} min`
      : `${num(t / 1000, 1)} s`;
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

  /** One of the three views: "noToken" (the service has no ADMIN_TOKEN), "login", or "main" (the data). */
  function show(view, message) {
    $("noToken").hidden = view !== "noToken";
    $("login").hidden = view !== "login";
    $("main").hidden = view !== "main";
    $("controls").hidden = view !== "main";
    if (view !== "main") stopTimer();
    if (view === "login") $("loginError").textContent = message ?? "";
    if (view === "noToken") setStatus("closed: no ADMIN_TOKEN on this service", "bad");
    if (view === "login") setStatus("not connected");
  }

  function stopTimer() {
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
  }

  function startTimer() {
    stopTimer();
    const s = Number($("refresh").value);
    if (s > 0 && !$("main").hidden) state.timer = setInterval(refresh, s * 1000);
  }

  function windowOf(value) {
    return WINDOWS.find((w) => w.value === value) ?? WINDOWS[3];
  }

  function params() {
    const w = windowOf($("window").value);
    const p = new URLSearchParams({ from: w.value, bucket: w.bucket, recent: "25" });
    for (const k of ["edgeLocation", "switcherVersion"]) if ($(k).value) p.set(k, $(k).value);
    return p;
  }

  async function refresh() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return show("login");
    let res;
    try {
      res = await fetch(`/v1/stats?${params()}`, { headers: { authorization: `Bearer ${token}` } });
    } catch (err) {
      state.errors++;
      state.lastError = String(err);
      return setStatus(`cannot reach the service (${err})`, "bad");
    }
    const body = await res.json().catch(() => null);
    if (res.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      // The service may have been restarted without a token since the page was served.
      if (/no ADMIN_TOKEN/.test(body?.message ?? "")) return show("noToken");
      return show("login", "The service refused this token: it is not the ADMIN_TOKEN the service was started with.");
    }
    if (!res.ok || !body) {
      state.errors++;
      state.lastError = body?.message ?? `HTTP ${res.status}`;
      return setStatus(`error: ${state.lastError}`, "bad");
    }
    state.report = body;
    state.refreshes++;
    show("main");
    render(body);
    setStatus(`updated ${time(body.generatedAt).slice(11)} UTC · queries ${num(body.queryMs, 1)} ms`, "ok");
  }

  function fillSelect(id, values) {
    const sel = $(id);
    const current = sel.value;
    const options = ["", ...values];
    if (current && !options.includes(current)) options.push(current);
    if (sel.options.length === options.length && [...sel.options].every((o, i) => o.value === options[i])) return;
    sel.replaceChildren(...options.map((v) => new Option(v === "" ? "all" : v, v, false, v === current)));
  }

  /**
   * What the charts cannot say on their own: an empty window, or decisions crowded into a few buckets (a first
   * burst of requests in a 24 h view), with the shorter window that shows them spread out.
   */
  function renderNote(r) {
    const el = $("note");
    const occupied = r.series.filter((b) => b.decisions > 0);
    const buckets = `${r.series.length} buckets of ${duration(r.query.bucketMs)}`;
    if (r.summary.decisions === 0) {
      el.innerHTML = `No decisions in this window (${buckets}) yet. Each answer of <code>POST /v1/classify</code> ` +
        "is logged and shows here within one refresh.";
      el.hidden = false;
      return;
    }
    const current = windowOf($("window").value);
    const oldestMs = occupied[0].startMs;
    const shorter = WINDOWS.find((w) => w.ms < current.ms && r.query.toMs - w.ms <= oldestMs);
    if (occupied.length > 3 || !shorter) {
      el.hidden = true;
      return;
    }
    el.innerHTML = `All ${num(r.summary.decisions)} decisions of this window fall in ${occupied.length} of its ` +
      `${buckets}, so the charts show them as ${occupied.length === 1 ? "a single point" : "a few points"}.` +
      `<button type="button" data-window="${shorter.value}">show the last ${
        esc($("window").querySelector(`option[value="${shorter.value}"]`).textContent)
      }</button>`;
    el.hidden = false;
  }

  function render(r) {
    const a = r.active;
    $("active").innerHTML = `Serving edge model <b>${esc(a.edge)}</b>, switcher <b>${esc(a.switcher)}</b> ` +
      `(threshold <b>${num(a.threshold, 3)}</b>), cloud model <b>${esc(a.cloud)}</b>, at edge location ` +
      `<b>${esc(a.edgeLocation)}</b>. Window ${time(r.query.fromMs)} → ${time(r.query.toMs)} UTC, ` +
      `${r.series.length} buckets of ${duration(r.query.bucketMs)}.`;
    renderNote(r);
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
      ["cloud time saved", s.savedCloudMs === null ? "–" : seconds(s.savedCloudMs)],
      ["p95 latency", total ? `${ms(total.p95)} ms` : "–"],
    ];
    $("cards").innerHTML = cards.map(([k, v]) =>
      `<div class="card"><div class="v">${v}</div><div class="k">${k}</div></div>`
    ).join("");

    const x = r.series.map((b) => b.startMs / 1000);
    const rate = (key) => r.series.map((b) => (b[key] === null ? null : b[key] * 100));
    drawChart("rates", [x, rate("offloadRate"), rate("shadowRate"), rate("fallbackRate")], [
      { label: "offload %", stroke: "#2563eb", width: 2 },
      { label: "shadow %", stroke: "#9333ea" },
      { label: "fallback %", stroke: "#dc2626" },
    ], { y: { range: (_u, _min, max) => [0, niceMax(max, 5)] } });
    drawChart("agreement", [x, rate("agreementRate")], [{ label: "agreement %", stroke: "#15803d", width: 2 }], {
      y: { range: [0, 100] },
    });
    drawChart("latency", [x, r.series.map((b) => b.meanTotalMs)], [{
      label: "mean total ms",
      stroke: "#ea580c",
      width: 2,
    }], { y: { range: (_u, _min, max) => [0, niceMax(max, 1)] } });
    // Counts are zero, not missing, in an empty bucket: bars show where the traffic was.
    drawChart(
      "savings",
      [x, r.series.map((b) => b.decisions), r.series.map((b) => Math.max(0, b.savedCloudCalls))],
      [
        { label: "decisions", stroke: "#94a3b8", fill: "#cbd5e1", bars: true },
        { label: "no cloud call", stroke: "#0891b2", fill: "#67c5d9", bars: true },
      ],
      { y: { range: (_u, _min, max) => [0, niceMax(max, 1)] } },
    );

    table(
      "latency",
      ["route", "stage", "n", "mean", "p50", "p90?", "p95", "p99?", "max"],
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
      ["kind", "route?", "reason", "cloud error", "count", "rate?"],
      r.fallbacks.map((f) => [
        f.kind,
        f.route,
        f.routeReason,
        f.cloudError ?? "–",
        num(f.count),
        pct(f.rate),
      ]),
      "no fallbacks in this window",
    );
    table(
      "versions",
      ["switcher", "decisions?", "offload", "agreement?", "fallback?", "calls saved?", "threshold"],
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
      ["location", "decisions", "offload", "agreement?", "fallback?", "mean cloud ms?", "mean total ms"],
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
    // More than two tiers configured (TIERS): each tier's share, agreement with the tier below, failures and cost.
    const tiers = r.tiers ?? [];
    $("tiers-panel").hidden = tiers.length === 0;
    table(
      "tiers",
      ["tier", "calls", "explored?", "answers", "share", "agreement", "errors", "mean ms?", "cost ms?", "price?"],
      tiers.map((t) => [
        `${t.tier}: ${t.name}`,
        num(t.calls),
        num(t.explored),
        num(t.answered),
        pct(t.share),
        pct(t.agreement),
        num(t.errors),
        ms(t.meanMs),
        num(t.costMs),
        num(t.price, 4),
      ]),
    );
    table(
      "recent",
      ["time (UTC)", "route", "reason?", "label", "edge?", "cloud?", "score", "total ms", "location?", "request id?"],
      r.recent.map((d) => [
        // Month, day and time: the window line above gives the year.
        { text: time(d.createdAt).slice(5), title: time(d.createdAt) },
        d.route + (d.shadow ? " +shadow" : ""),
        d.routeReason,
        d.label,
        d.edgeLabel,
        d.cloudLabel ?? (d.cloudError ? `error: ${d.cloudError}` : "–"),
        num(d.switcherScore, 3),
        ms(d.totalMs),
        d.edgeLocation,
        // Request ids are often UUIDs: the start tells them apart, the whole id is in the tooltip.
        { text: d.requestId.length > 13 ? `${d.requestId.slice(0, 12)}…` : d.requestId, title: d.requestId },
      ]),
    );
  }

  /** A round upper bound for a y axis starting at 0 (at least `floor`, so that a flat zero line sits low). */
  function niceMax(max, floor) {
    if (!(max > 0)) return floor;
    const step = 10 ** Math.floor(Math.log10(max));
    const nice = [1, 2, 2.5, 5, 10].map((m) => m * step).find((v) => v >= max * 1.05) ?? 10 * step;
    return Math.max(floor, nice);
  }

  function cell(c, attrs) {
    if (c !== null && typeof c === "object") return `<td${attrs} title="${esc(c.title)}">${esc(c.text)}</td>`;
    return `<td${attrs}>${esc(c)}</td>`;
  }

  /**
   * Fill a table. A heading ending in "?" marks a column that narrow screens leave out (class `opt`).
   */
  function table(id, head, rows, empty = "no decisions in this window") {
    const el = $(id);
    el.dataset.rows = String(rows.length);
    const optional = head.map((h) => h.endsWith("?"));
    const cls = (i) => (optional[i] ? ' class="opt"' : "");
    const th = `<thead><tr>${
      head.map((h, i) => `<th${cls(i)}>${esc(h.replace(/\?$/, ""))}</th>`).join("")
    }</tr></thead>`;
    const body = rows.length
      ? rows.map((row) => `<tr>${row.map((c, i) => cell(c, cls(i))).join("")}</tr>`).join("")
      : `<tr><td class="empty" colspan="${head.length}">${esc(empty)}</td></tr>`;
    el.innerHTML = `${th}<tbody>${body}</tbody>`;
  }

  /**
   * The indices of a series' values to mark with a point: all of them when there are few, otherwise those with no
   * neighbour to draw a line to (a bucket with decisions between empty ones would be invisible as a line alone).
   */
  function pointsToMark(u, seriesIdx) {
    const ys = u.data[seriesIdx];
    const present = (i) => ys[i] !== null && ys[i] !== undefined;
    let n = 0;
    for (let i = 0; i < ys.length; i++) if (present(i)) n++;
    const marks = [];
    for (let i = 0; i < ys.length; i++) {
      if (present(i) && (n <= POINTS_UP_TO || (!present(i - 1) && !present(i + 1)))) marks.push(i);
    }
    return marks;
  }

  function seriesOptions(s) {
    const { bars, ...rest } = s;
    if (bars) return { ...rest, paths: uPlot.paths.bars({ size: [0.8, 60], align: 1 }), points: { show: false } };
    return { spanGaps: false, points: { show: false, size: 7, fill: s.stroke, filter: pointsToMark }, ...rest };
  }

  function drawChart(name, data, series, scales) {
    const el = $(`chart-${name}`);
    const points = data.slice(1).reduce((n, ys) => n + ys.filter((y) => y !== null && y !== undefined).length, 0);
    el.dataset.points = String(points);
    const width = Math.max(200, el.clientWidth || 480);
    const existing = state.charts[name];
    if (existing && existing.series.length === series.length + 1) {
      existing.setData(data);
      if (Math.abs(existing.width - width) > 2) existing.setSize({ width, height: CHART_HEIGHT });
      return;
    }
    existing?.destroy();
    const opts = {
      width,
      height: CHART_HEIGHT,
      // Bucket starts are UTC like every time on the page.
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      series: [{ label: "bucket (UTC)" }, ...series.map(seriesOptions)],
      axes: [{}, { size: 48 }],
      scales: { x: { time: true, range: windowRange }, ...scales },
      legend: { live: true },
      cursor: { points: { show: true } },
    };
    state.charts[name] = new uPlot(opts, data, el);
  }

  /** The x axis spans the whole window, its first bucket's start to its last bucket's end, whatever holds data. */
  function windowRange() {
    const series = state.report.series;
    const bucketS = state.report.query.bucketMs / 1000;
    return [series[0].startMs / 1000, series[series.length - 1].startMs / 1000 + bucketS];
  }

  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    refresh().then(startTimer);
  });
  $("signout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    show("login");
  });
  $("note").addEventListener("click", (e) => {
    const value = e.target?.dataset?.window;
    if (!value) return;
    $("window").value = value;
    refresh();
  });
  for (const id of ["window", "edgeLocation", "switcherVersion"]) $(id).addEventListener("change", refresh);
  $("refresh").addEventListener("change", startTimer);
  addEventListener("resize", () => state.report && !$("main").hidden && render(state.report));

  if (document.body.dataset.adminToken === "none") show("noToken");
  else if (sessionStorage.getItem(TOKEN_KEY)) refresh().then(startTimer);
  else show("login");
})();
