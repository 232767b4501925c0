/* Runs: the filterable, sortable runs table, learning curves of selected runs on one uPlot chart (drag to zoom,
   double-click to reset, hover for values, log scale), the side-by-side params diff, and one run's page. */
"use strict";
(function () {
  const { el, api, studyPath, pagePath } = TDB;
  const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#db2777", "#4d7c0f", "#7c3aed", "#b45309"];

  /* Draw curves on one chart: curves = [{label, steps, values}].  Steps are merged into one x axis. */
  TDB.drawChart = function (holder, curves, { log = false, title = "" } = {}) {
    holder.replaceChildren();
    const steps = [...new Set(curves.flatMap((c) => c.steps))].sort((a, b) => a - b);
    const index = new Map(steps.map((s, i) => [s, i]));
    const data = [steps];
    for (const c of curves) {
      const ys = new Array(steps.length).fill(null);
      c.steps.forEach((s, i) => { const v = c.values[i]; ys[index.get(s)] = log && !(v > 0) ? null : v; });
      data.push(ys);
    }
    const width = Math.max(320, holder.clientWidth || 800);
    const opts = {
      title, width, height: 340,
      cursor: { drag: { x: true, y: false }, focus: { prox: 24 } },
      scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
      axes: [{ label: "step" }, { label: log ? "value (log)" : "value", size: 64 }],
      legend: { live: true },
      series: [{ label: "step" }, ...curves.map((c, i) => ({ label: c.label, stroke: PALETTE[i % PALETTE.length], width: 2,
        spanGaps: true, points: { size: 5 } }))],
    };
    const chart = new uPlot(opts, data, holder);
    holder.dataset.series = String(curves.length);
    holder.dataset.points = String(curves.reduce((n, c) => n + c.values.length, 0));
    TDB.charts.push(chart);
    return chart;
  };

  function chartPanel(curvesByName, { emptyText }) {
    const names = Object.keys(curvesByName).sort();
    const holder = el("div", { class: "chart", id: "chart" });
    if (!names.length) return el("div", { class: "muted", text: emptyText });
    const prefer = ["valid_acc", "test_acc", "acc", "loss"].find((n) => names.includes(n)) || names[0];
    const select = el("select", { id: "metric", onchange: redraw }, names.map((n) => el("option", { value: n, text: n, selected: n === prefer })));
    const logBox = el("input", { type: "checkbox", id: "logscale", onchange: redraw });
    const panel = el("div", { class: "chart-panel" },
      el("div", { class: "chart-controls" }, el("label", {}, "metric ", select), el("label", {}, logBox, " log scale"),
        el("span", { class: "hint", text: "drag to zoom · double-click to reset · hover for values" })), holder);
    function redraw() { TDB.drawChart(holder, curvesByName[select.value], { log: logBox.checked }); }
    requestAnimationFrame(redraw);
    return panel;
  }

  async function curvesOf(study, runs) {
    const byName = {};
    const answers = await Promise.all(runs.map((r) => api(studyPath(study, `/runs/${encodeURIComponent(r.id)}/metrics`))));
    answers.forEach((answer, i) => {
      for (const s of answer.series) (byName[s.name] = byName[s.name] || []).push({ label: runs[i].name || TDB.shortId(runs[i].id), steps: s.steps, values: s.values });
    });
    return byName;
  }

  function paramsDiff(runs) {
    const keys = [...new Set(runs.flatMap((r) => Object.keys(r.params || {})))].sort();
    const rows = keys.map((k) => {
      const values = runs.map((r) => (r.params || {})[k]);
      const differs = new Set(values.map((v) => JSON.stringify(v))).size > 1;
      return el("tr", { class: differs ? "differs" : null }, el("th", { text: k }), values.map((v) => el("td", { text: TDB.fmtValue(v) })));
    });
    return el("table", { class: "grid diff", id: "params-diff" },
      el("thead", {}, el("tr", {}, el("th", { text: "param" }), runs.map((r) => el("th", { text: r.name || TDB.shortId(r.id) })))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { class: "muted", text: "no params" }))));
  }

  TDB.pages.runs = async function (content, { study }) {
    const params = new URLSearchParams(window.location.search);
    const results = el("div", { id: "runs" });
    const compare = el("div", { id: "compare" });
    const selected = new Set();
    let current = [];
    const box = TDB.queryBox('filter, e.g. {"status": "finished", "params.lr": {"$lt": 0.05}}', params.get("q"), (text, message) => load(text, message));
    content.replaceChildren(box, results, compare);

    async function load(text, message) {
      try {
        const answer = await api(studyPath(study, "/runs"), { q: text, limit: 500 });
        if (message) message.textContent = "";
        current = answer.runs;
        for (const id of [...selected]) if (!current.some((r) => r.id === id)) selected.delete(id);
        drawTable(answer);
        drawCompare();
      } catch (e) {
        if (message && e.status === 400) message.textContent = e.message; else TDB.showError(results, e);
      }
    }

    function drawTable(answer) {
      const columns = [
        { key: "select", label: "", sortable: false, cls: "select", cell: (r) => el("input", { type: "checkbox", class: "pick", checked: selected.has(r.id),
          dataset: { run: r.id }, onchange: (e) => { e.target.checked ? selected.add(r.id) : selected.delete(r.id); drawCompare(); } }) },
        { key: "name", label: "run", value: (r) => r.name || r.id, cell: (r) => el("a", { href: pagePath(study, `/runs/${encodeURIComponent(r.id)}`), text: r.name || TDB.shortId(r.id) }) },
        { key: "status", label: "status", cell: (r) => TDB.badge(r.status) },
        { key: "started", label: "started", cell: (r) => TDB.fmtTime(r.started) },
        { key: "duration_s", label: "duration", cls: "num", cell: (r) => TDB.fmtDuration(r.duration_s) },
        ...answer.params.map((p) => ({ key: `params.${p}`, label: p, cls: "num param", value: (r) => r.params[p] })),
        ...answer.metrics.map((m) => ({ key: `metrics.${m}`, label: m, cls: "num metric", value: (r) => r.metrics[m] })),
      ];
      const note = el("div", { class: "table-note", text: `${answer.shown} of ${answer.total} run(s) · click a header to sort · tick runs to compare` });
      results.replaceChildren(el("div", { class: "scroll" }, TDB.table(columns, answer.runs, { empty: "no runs match", cls: "runs-table" })), note);
    }

    let generation = 0;  // ticking boxes quickly starts overlapping fetches: only the newest one draws
    async function drawCompare() {
      const mine = ++generation;
      const runs = current.filter((r) => selected.has(r.id));
      if (!runs.length) { compare.replaceChildren(); return; }
      const curves = await curvesOf(study, runs);
      if (mine !== generation) return;
      compare.replaceChildren(
        TDB.section(`Learning curves · ${runs.length} run(s)`, chartPanel(curves, { emptyText: "these runs logged no metrics" })),
        TDB.section("Params, side by side", paramsDiff(runs)));
    }
    await load(params.get("q") || "", null);
  };

  TDB.pages.run = async function (content, { study, run }) {
    const r = await api(studyPath(study, `/runs/${encodeURIComponent(run)}`));
    document.getElementById("title").textContent = `Run ${r.name || TDB.shortId(r.id)}`;
    const kv = (obj) => TDB.table([{ key: "k", label: "name" }, { key: "v", label: "value", cls: "num" }],
      Object.entries(obj || {}).map(([k, v]) => ({ k, v })), { empty: "none" });
    const curves = await curvesOf(study, [r]);
    const byName = {};
    for (const [name, list] of Object.entries(curves)) byName[name] = list.map((c) => ({ ...c, label: name }));
    const artifactsList = el("div", { class: "artifacts", id: "artifacts" });
    for (const a of r.artifacts) {
      const href = studyPath(study, `/runs/${encodeURIComponent(r.id)}/artifacts/${encodeURIComponent(a.name)}`);
      const head = el("div", { class: "artifact-head" }, el("strong", { text: a.name }), el("span", { class: "muted", text: ` ${a.media_type} · ${a.size} bytes ` }),
        el("a", { href: href + "?download=1", text: "download" }));
      const item = el("div", { class: "artifact", dataset: { name: a.name } }, head);
      if (a.shown_as === "image" && a.size < 20e6) item.append(el("img", { src: href, alt: a.name, class: "artifact-image" }));
      else if (a.shown_as === "text" && a.size < 2e5) {
        const pre = el("pre", { class: "artifact-text", text: "…" });
        item.append(pre);
        fetch(href, { credentials: "same-origin" }).then((x) => x.text()).then((t) => { pre.textContent = t; });
      }
      artifactsList.append(item);
    }
    content.replaceChildren(...[
      el("div", { class: "stats" }, el("div", { class: `stat status-${r.status === "finished" ? "done" : r.status === "running" ? "running" : "dead"}` },
        el("div", { class: "stat-value", text: r.status }), el("div", { class: "stat-label", text: "status" })), TDB.stat("duration", TDB.fmtDuration(r.duration_s)),
        TDB.stat("started", TDB.fmtTime(r.started)), TDB.stat("user@host", `${r.user || "?"}@${r.host || "?"}`)),
      r.error ? el("div", { class: "error", text: r.error }) : null,
      TDB.section("Learning curves", chartPanel(byName, { emptyText: "this run logged no metrics" })),
      el("div", { class: "two" }, TDB.section("Params", kv(r.params)), TDB.section("Latest metrics", kv(r.metrics))),
      TDB.section("Tags", kv(r.tags)),
      r.job_doc ? TDB.section("Job", el("pre", { class: "json", text: JSON.stringify(r.job_doc.spec, null, 1) })) : null,
      TDB.section(`Artifacts (${r.artifacts.length})`, r.artifacts.length ? artifactsList : el("div", { class: "muted", text: "no artifacts" })),
    ].filter(Boolean));
  };
})();
