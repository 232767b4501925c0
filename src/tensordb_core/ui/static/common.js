/* Shared helpers of the TensorDB UI pages: JSON fetches, safe DOM building (text only, never innerHTML),
   sortable tables and value formatting.  Each page script registers itself in TDB.pages[name]. */
"use strict";
const TDB = (window.TDB = { pages: {}, charts: [] });

TDB.api = async function (path, params) {
  const url = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) { const e = new Error(body.error || response.statusText); e.status = response.status; throw e; }
  return body;
};

TDB.el = function (tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
};

TDB.studyPath = (study, rest) => `/api/studies/${encodeURIComponent(study)}${rest || ""}`;
TDB.pagePath = (study, rest) => `/studies/${encodeURIComponent(study)}${rest || ""}`;

TDB.fmtTime = function (t) {
  if (typeof t !== "number" || !t) return "–";
  const d = new Date(t * 1000), pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
};
TDB.fmtAgo = function (t) {
  if (typeof t !== "number" || !t) return "–";
  const s = Math.max(0, Date.now() / 1000 - t);
  if (s < 60) return `${s.toFixed(0)} s ago`;
  if (s < 3600) return `${(s / 60).toFixed(0)} min ago`;
  if (s < 86400) return `${(s / 3600).toFixed(1)} h ago`;
  return `${(s / 86400).toFixed(1)} d ago`;
};
TDB.fmtDuration = function (s) {
  if (typeof s !== "number") return "–";
  if (s < 1) return `${(s * 1000).toFixed(0)} ms`;
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
};
TDB.fmtValue = function (v) {
  if (v === undefined || v === null) return "–";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : (Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3) && v !== 0 ? v.toExponential(3) : v.toPrecision(4).replace(/\.?0+$/, "");
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
};
/* A JSON value in a table cell: shortened to max characters, the whole value in the tooltip. */
TDB.jsonCell = function (value, max) {
  if (value === undefined || value === null) return "–";
  const text = typeof value === "string" ? value : JSON.stringify(value), limit = max || 100;
  return TDB.el("code", { class: "json-cell", title: text.length > limit ? text : null, text: text.length > limit ? text.slice(0, limit - 1) + "…" : text });
};
TDB.shortId = (id) => (typeof id === "string" ? id.slice(-8) : "–");
TDB.badge = (status) => TDB.el("span", { class: `badge ${status || "none"}`, text: status || "–" });

TDB.showError = function (where, error) {
  where.replaceChildren(TDB.el("div", { class: "error", role: "alert" }, error.message || String(error)));
};

/* A table whose every column sorts on a header click.  columns: [{key, label, value(row), cell(row), cls}]. */
TDB.table = function (columns, rows, options) {
  const opts = options || {};
  let sortKey = opts.sortKey || null, sortDir = opts.sortDir || 1;
  const table = TDB.el("table", { class: "grid" + (opts.cls ? " " + opts.cls : "") });
  const thead = TDB.el("thead"), tbody = TDB.el("tbody");
  table.append(thead, tbody);
  const valueOf = (c, r) => (c.value ? c.value(r) : r[c.key]);
  function draw() {
    const sorted = rows.slice();
    const col = columns.find((c) => c.key === sortKey);
    if (col) sorted.sort((a, b) => {
      const x = valueOf(col, a), y = valueOf(col, b);
      if (x === y) return 0;
      if (x === undefined || x === null) return 1;
      if (y === undefined || y === null) return -1;
      return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y))) * sortDir;
    });
    thead.replaceChildren(TDB.el("tr", {}, columns.map((c) => TDB.el("th", {
      class: [c.cls, c.sortable === false ? "" : "sortable", c.key === sortKey ? (sortDir > 0 ? "asc" : "desc") : ""].filter(Boolean).join(" "),
      dataset: { key: c.key }, title: c.title || null,
      onclick: c.sortable === false ? null : () => { sortDir = sortKey === c.key ? -sortDir : 1; sortKey = c.key; draw(); },
    }, c.label))));
    tbody.replaceChildren(...sorted.map((r) => TDB.el("tr", { dataset: { id: r.id || "" } }, columns.map((c) => {
      const content = c.cell ? c.cell(r) : TDB.fmtValue(valueOf(c, r));
      return TDB.el("td", { class: c.cls || null }, content);
    }))));
    if (!rows.length) tbody.append(TDB.el("tr", {}, TDB.el("td", { colspan: columns.length, class: "muted empty", text: opts.empty || "nothing to show" })));
  }
  draw();
  return table;
};

TDB.section = (title, ...children) => TDB.el("section", { class: "card" }, TDB.el("h2", { text: title }), ...children);
TDB.stat = (label, value, href) => TDB.el(href ? "a" : "div", { class: "stat", href: href || null },
  TDB.el("div", { class: "stat-value", text: TDB.fmtValue(value) }), TDB.el("div", { class: "stat-label", text: label }));

/* A query box: input + Apply; calls onApply(text) and shows the server's 400 message under it. */
TDB.queryBox = function (placeholder, initial, onApply) {
  const input = TDB.el("input", { type: "search", class: "query", id: "query", placeholder, value: initial || "", spellcheck: "false" });
  const message = TDB.el("div", { class: "query-error", id: "query-error" });
  const form = TDB.el("form", { class: "query-form", onsubmit: (e) => { e.preventDefault(); onApply(input.value.trim(), message); } },
    input, TDB.el("button", { type: "submit", text: "Apply" }));
  return TDB.el("div", { class: "query-box" }, form, message);
};

document.addEventListener("DOMContentLoaded", () => {
  const body = document.body, content = document.getElementById("content");
  const ctx = { study: body.dataset.study, run: body.dataset.run };
  const draw = TDB.pages[body.dataset.page];
  if (!draw) { content.textContent = "unknown page"; return; }
  Promise.resolve(draw(content, ctx)).catch((e) => TDB.showError(content, e));
});
