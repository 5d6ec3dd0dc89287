// scalper live view: renders the ops server's snapshot (GET /view/snapshot) and every server-sent event
// (GET /view/events). Plain DOM, textContent only (no HTML from data), SVG charts drawn here; no build step.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
let decimals = {}; // symbol -> price decimals (from the books)
let events = 0;

function num(x, d = 2) {
  if (x === null || x === undefined || Number.isNaN(x)) return "-";
  // plain digits, never scientific notation
  return Number(x).toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}
function price(sym, x) {
  const d = decimals[sym];
  if (d !== undefined) return num(x, d);
  if (x === null || x === undefined) return "-";
  return Number(x).toLocaleString("en-US", { maximumFractionDigits: 8 });
}
function signed(x, d = 2) {
  if (x === null || x === undefined) return "-";
  return (x > 0 ? "+" : "") + num(x, d);
}
function tone(x) { return x > 0 ? "pos" : x < 0 ? "neg" : ""; }
function timeOf(ns) {
  if (!ns) return "-";
  return new Date(ns / 1e6).toISOString().slice(11, 19);
}
function td(text, cls) {
  const c = document.createElement("td");
  c.textContent = text;
  if (cls) c.className = cls;
  return c;
}
function fill(tableId, rows, empty, cols) {
  const body = $(tableId).tBodies[0];
  body.replaceChildren();
  if (!rows.length) {
    const tr = document.createElement("tr");
    const c = td(empty, "empty");
    c.colSpan = cols;
    tr.appendChild(c);
    body.appendChild(tr);
    return;
  }
  for (const r of rows) body.appendChild(r);
}
function row(cells, attrs = {}) {
  const tr = document.createElement("tr");
  for (const [k, v] of Object.entries(attrs)) tr.setAttribute(k, v);
  for (const c of cells) tr.appendChild(c);
  return tr;
}
function badge(el, text, cls) { el.textContent = text; el.className = "badge " + cls; }

function renderHeader(s) {
  const info = s.info || {};
  $("title").textContent = `scalper ${info.name || ""}`;
  const h = (s.health || {}).status || "?";
  badge($("health"), `health ${h}`, h === "ok" ? "ok" : h === "halted" ? "bad" : "warn");
  const t = (s.trading || {}).state || "?";
  badge($("trading"), `trading ${t}`, t === "ACTIVE" ? "ok" : t === "HALTED" ? "bad" : "warn");
  const up = s.uptime_s === null || s.uptime_s === undefined ? "-" : `${Math.round(s.uptime_s)} s`;
  $("meta").textContent = `${info.mode || ""} on ${info.venue || ""} · uptime ${up} · ${timeOf(s.now_ns)} UTC`;
  const ul = $("reasons");
  ul.replaceChildren(...((s.health || {}).reasons || []).map((r) => {
    const li = document.createElement("li");
    li.textContent = r;
    return li;
  }));
}

function renderPositions(s) {
  const ps = s.positions || [];
  $("positions-count").textContent = `(${ps.length})`;
  fill("positions", ps.map((p) => {
    const stop = td(price(p.symbol, p.stop_price), "n stop" + (p.stop_confirmed === false ? " unconfirmed" : ""));
    if (p.stop_confirmed === false) stop.title = "replacement stop not yet acknowledged";
    return row([td(p.symbol), td(p.side), td(num(p.qty, 4), "n"), td(price(p.symbol, p.entry_price), "n"), stop,
      td((p.targets || []).map((x) => price(p.symbol, x)).join("  ") || "-"),
      td(signed(p.unrealized_pnl_quote), "n " + tone(p.unrealized_pnl_quote)), td((p.trade_ids || []).join(" "))],
      { "data-symbol": p.symbol });
  }), "no open position", 8);
}

function renderOrders(s) {
  const os = s.open_orders || [];
  $("orders-count").textContent = `(${os.length})`;
  fill("orders", os.map((o) => row([td(o.client_id), td(o.symbol), td(o.role || "-"), td(o.kind), td(o.side),
    td(num(o.qty, 4), "n"), td(price(o.symbol, o.price), "n"),
    td(o.confirmed === false ? `${o.status} (not acknowledged)` : o.status || "-")],
  { "data-client-id": o.client_id })), "no resting order", 8);
}

function renderBooks(s, books) {
  const feeds = s.feeds || {};
  const syms = [...new Set([...Object.keys(feeds), ...Object.keys(books)])].sort();
  fill("books", syms.map((sym) => {
    const f = feeds[sym] || {};
    const b = books[sym] || {};
    const rate = Object.values(f.rates_per_s || {}).reduce((a, x) => a + x, 0);
    const st = f.status || "?";
    return row([td(sym), td(st, st === "LIVE" ? "pos" : "neg"), td(price(sym, b.bid), "n"), td(price(sym, b.ask), "n"),
      td(num(b.spread_ticks, 0), "n"), td(num(b.imbalance, 2), "n"), td(num(f.age_ms, 0), "n"), td(String(rate), "n"),
      td(String(f.resyncs ?? "-"), "n"), td(f.reason || "")], { "data-symbol": sym });
  }), "no book", 10);
}

function transportText(t) {
  if (t.configured !== "ws") return "REST";
  const up = t.state === "up";
  return `websocket ${up ? "up" : t.state === "down" ? "DOWN (REST meanwhile)" : t.state} since ${timeOf(t.since_ns)}` +
    ` · ${t.ws_requests} over ws, ${t.rest_fallbacks} by REST · ${t.reconnects} reconnects` +
    (t.last_error ? ` · last error ${t.last_error}` : "");
}

function renderControl(s) {
  const dl = $("control-state");
  const r = s.reconcile || {};
  const us = s.user_stream;
  const items = [
    ["trading", `${(s.trading || {}).state} · ${(s.trading || {}).reason || ""}`],
    ["reconciliation", `${r.state} · ${r.runs ?? 0} passes, ${r.failures_total ?? 0} failed` +
      (r.last_ok_ns ? ` · last ok ${timeOf(r.last_ok_ns)}` : "")],
    ["reconcile actions", Object.entries(r.actions || {}).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`)
      .join(", ") || "none"],
    ["user stream", us === null || us === undefined ? "none in this mode"
      : `${us.ok ? "connected" : "DOWN"}${us.reason ? " · " + us.reason : ""}${us.doubt ? " · " + us.doubt : ""}`],
    ...Object.entries(s.order_transport || {}).map(([venue, t]) => [`orders to ${venue}`, transportText(t)]),
    ["denials", Object.entries(s.denials || {}).map(([k, v]) => `${k} ${v}`).join(", ") || "none"],
  ];
  if (r.last_error) items.splice(2, 0, ["last reconcile error", r.last_error]);
  dl.replaceChildren();
  for (const [k, v] of items) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dl.append(dt, dd);
  }
  const halts = Object.entries(s.halted_symbols || {});
  fill("halts", halts.map(([sym, h]) => row([td(sym), td(h.reason), td(timeOf(h.since_ns))], { "data-symbol": sym })),
    "no symbol halted", 3);
}

function renderTrades(trades) {
  fill("trades", trades.map((t) => {
    const costs = (t.fees || 0) - (t.funding_quote || 0); // funding: negative = paid
    const costR = t.risk_budget ? costs / t.risk_budget : null;
    return row([td(timeOf(t.exit_ts_ns)), td(t.trade_id), td(t.symbol), td(t.setup), td(t.side),
      td(price(t.symbol, t.entry_price), "n"), td(price(t.symbol, t.exit_price), "n"), td(t.exit_reason || "-"),
      td(signed(t.pnl), "n " + tone(t.pnl)), td(num(t.fees, 4), "n"), td(num(t.funding_quote, 4), "n"),
      td(num(costR, 2), "n"), td(signed(t.r_multiple), "n " + tone(t.r_multiple))], { "data-trade-id": t.trade_id });
  }), "no closed trade yet", 13);
}

function svgEl(name, attrs) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}
function label(svg, x, y, text, anchor = "start") {
  const t = svgEl("text", { x, y, "text-anchor": anchor });
  t.textContent = text;
  svg.appendChild(t);
}

function renderEquity(eq) {
  const figs = $("equity-figures");
  const chart = $("equity-chart");
  const ddChart = $("drawdown-chart");
  chart.replaceChildren();
  ddChart.replaceChildren();
  if (!eq) {
    figs.textContent = "no equity yet";
    return;
  }
  const fig = (name, text, cls) => {
    const span = document.createElement("span");
    span.append(`${name} `);
    const b = document.createElement("b");
    b.textContent = text;
    if (cls) b.className = cls;
    span.appendChild(b);
    return span;
  };
  figs.replaceChildren(fig("equity", num(eq.equity)), fig("day", `${signed(eq.day_pnl_pct)} %`, tone(eq.day_pnl_pct)),
    fig("drawdown", `${num(eq.drawdown_pct)} % (halt at ${num(eq.max_drawdown_pct, 1)} %)`,
      eq.drawdown_pct > 0 ? "neg" : ""), fig("day peak", num(eq.day_peak)));
  const pts = eq.series || [];
  if (pts.length < 2) {
    label(chart, 300, 80, "collecting samples (one a second)", "middle");
    return;
  }
  const W = 600, H = 160, L = 62, B = 16, T = 6;
  const t0 = pts[0][0], t1 = pts[pts.length - 1][0];
  let lo = Math.min(...pts.map((p) => p[1])), hi = Math.max(...pts.map((p) => p[1]));
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const x = (t) => L + (W - L - 4) * (t - t0) / Math.max(1, t1 - t0);
  const y = (v) => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
  for (const v of [lo, (lo + hi) / 2, hi]) {
    chart.appendChild(svgEl("line", { class: "grid", x1: L, x2: W, y1: y(v), y2: y(v) }));
    label(chart, L - 4, y(v) + 3, num(v), "end");
  }
  label(chart, L, H - 3, timeOf(t0 * 1e6));
  label(chart, W - 4, H - 3, timeOf(t1 * 1e6), "end");
  const d = pts.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
  chart.appendChild(svgEl("path", { class: "eq", d }));
  chart.setAttribute("data-points", String(pts.length));
  // drawdown from the running peak of the series, 0 at the top: a loss never looks like a gain
  let peak = -Infinity;
  const dd = pts.map((p) => { peak = Math.max(peak, p[1]); return [p[0], peak > 0 ? (peak - p[1]) / peak * 100 : 0]; });
  const ddMax = Math.max(0.01, ...dd.map((p) => p[1]));
  const H2 = 70, B2 = 4;
  const y2 = (v) => 2 + (H2 - 2 - B2) * (v / ddMax);
  const area = `M${x(t0).toFixed(1)},${y2(0)} ` + dd.map((p) => `L${x(p[0]).toFixed(1)},${y2(p[1]).toFixed(1)}`)
    .join(" ") + ` L${x(t1).toFixed(1)},${y2(0)} Z`;
  ddChart.appendChild(svgEl("line", { class: "grid", x1: L, x2: W, y1: y2(0), y2: y2(0) }));
  ddChart.appendChild(svgEl("path", { class: "dd", d: area }));
  label(ddChart, L - 4, 12, "0 %", "end");
  label(ddChart, L - 4, H2 - 6, `-${num(ddMax)} %`, "end");
}

function renderErrors(s) {
  const errs = (s.last_errors || []).slice(-8).reverse();
  $("errors").replaceChildren(...(errs.length ? errs : [null]).map((e) => {
    const li = document.createElement("li");
    li.textContent = e ? `${timeOf(e.ts_ns)} ${e.source}: ${e.message}` : "none";
    if (!e) li.className = "muted";
    return li;
  }));
}

function render(snap) {
  const s = snap.status || {};
  for (const [sym, b] of Object.entries(snap.books || {})) {
    if (b && b.price_decimals !== undefined) decimals[sym] = b.price_decimals;
  }
  renderHeader(s);
  renderPositions(s);
  renderOrders(s);
  renderBooks(s, snap.books || {});
  renderControl(s);
  renderTrades(snap.trades || []);
  renderEquity(snap.equity);
  renderErrors(s);
  if (snap.extras_error) $("meta").textContent += ` · view data error: ${snap.extras_error}`;
  document.body.setAttribute("data-updates", String(events));
}

function connect() {
  const es = new EventSource("/view/events");
  es.onopen = () => badge($("conn"), "live", "ok");
  es.onmessage = (ev) => {
    events += 1;
    try { render(JSON.parse(ev.data)); } catch (err) { $("meta").textContent = `render error: ${err}`; }
  };
  // EventSource reconnects by itself (the server asks for 2 s): say so while it does
  es.onerror = () => badge($("conn"), "disconnected, retrying", "off");
}

fetch("/view/snapshot", { credentials: "same-origin" })
  .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
  .then(render)
  .catch((err) => { $("meta").textContent = `snapshot failed: ${err}`; })
  .finally(connect);
