/* Studies, Models, Jobs & workers (refreshed every POLL_MS) and the Data browser (query box, pages of samples
   with server-made thumbnails, array summaries, dataset versions). */
"use strict";
(function () {
  const { el, api, studyPath, pagePath } = TDB;
  const POLL_MS = 1500;

  TDB.pages.studies = async function (content) {
    const { studies } = await api("/api/studies");
    const columns = [
      { key: "study", label: "study", cell: (s) => el("a", { href: pagePath(s.study, "/runs"), text: s.study }) },
      { key: "samples", label: "samples", cls: "num", value: (s) => s.counts.samples },
      { key: "runs", label: "runs", cls: "num", value: (s) => s.counts.runs },
      { key: "parameter_sets", label: "parameter sets", cls: "num", value: (s) => s.counts.parameter_sets },
      { key: "jobs", label: "jobs", cls: "num", value: (s) => s.counts.jobs },
      { key: "registered_models", label: "models", cls: "num", value: (s) => s.counts.registered_models },
      { key: "last_activity", label: "last activity", cell: (s) => el("span", { title: TDB.fmtTime(s.last_activity), text: TDB.fmtAgo(s.last_activity) }) },
      { key: "links", label: "", sortable: false, cell: (s) => el("span", { class: "links" },
        ["runs", "models", "jobs", "data"].map((p) => el("a", { href: pagePath(s.study, `/${p}`), text: p }))) },
    ];
    content.replaceChildren(TDB.section(`${studies.length} stud${studies.length === 1 ? "y" : "ies"}`,
      TDB.table(columns, studies, { empty: "this warehouse holds no study yet", cls: "studies-table" })));
  };

  TDB.pages.models = async function (content, { study }) {
    const { models } = await api(studyPath(study, "/models"));
    if (!models.length) { content.replaceChildren(el("p", { class: "muted", text: "no registered models in this study (db.register_model)" })); return; }
    content.replaceChildren(...models.map((m) => {
      const lineage = el("div", { class: "lineage" });
      const versions = TDB.table([
        { key: "version", label: "version", cls: "num", cell: (v) => el("strong", { text: `v${v.version}` }) },
        { key: "aliases", label: "aliases", sortable: false, cell: (v) => Object.entries(m.aliases).filter(([, n]) => n === v.version).map(([a]) => el("span", { class: "chip", text: a })) },
        ...[...new Set(m.versions.flatMap((v) => Object.keys(v.metrics || {})))].sort().map((k) => ({ key: k, label: k, cls: "num", value: (v) => (v.metrics || {})[k] })),
        { key: "run", label: "run", cell: (v) => v.run ? el("a", { href: pagePath(study, `/runs/${encodeURIComponent(v.run)}`), text: TDB.shortId(v.run) }) : "–" },
        { key: "registered", label: "registered", cell: (v) => `${TDB.fmtTime(v.registered)} by ${v.registered_by || "?"}` },
        { key: "lineage", label: "", sortable: false, cell: (v) => el("button", { class: "small", text: "lineage", onclick: () => showLineage(m.name, v.version, lineage) }) },
      ], m.versions, { cls: "versions" });
      const history = TDB.table([
        { key: "at", label: "when", cell: (h) => TDB.fmtTime(h.at) },
        { key: "alias", label: "alias", cell: (h) => el("span", { class: "chip", text: h.alias }) },
        { key: "change", label: "moved", sortable: false, cell: (h) => `${h.previous === null || h.previous === undefined ? "(new)" : "v" + h.previous} → v${h.version}` },
        { key: "who", label: "who" },
      ], m.alias_history.slice().reverse(), { empty: "no alias set yet", cls: "alias-history" });
      return el("section", { class: "card model", dataset: { model: m.name } },
        el("div", { class: "model-head" }, el("h2", { text: m.name }),
          Object.entries(m.aliases).map(([a, n]) => el("span", { class: "chip big", text: `${a} → v${n}` }))),
        m.description ? el("p", { class: "muted", text: m.description }) : null,
        el("h3", { text: `Versions (${m.versions.length})` }), versions,
        el("h3", { text: "Alias history" }), history, lineage);
    }));
  };

  async function showLineage(name, version, where) {
    const l = await api(studyPath(document.body.dataset.study, `/models/${encodeURIComponent(name)}/versions/${version}`));
    const step = (title, body) => el("div", { class: "lineage-step" }, el("div", { class: "lineage-title", text: title }), body);
    const data = l.data || {};
    where.replaceChildren(el("h3", { text: `Lineage of ${name} v${version}` }), el("div", { class: "lineage-chain", id: "lineage" },
      step("parameter set", el("code", { text: l.version.param_id })),
      step("run", l.run ? el("a", { href: pagePath(document.body.dataset.study, `/runs/${encodeURIComponent(l.run.id)}`), text: `${l.run.name || l.run.id} (${l.run.status})` }) : "–"),
      step("job", l.job ? `${TDB.shortId(l.job.id)} · ${l.job.status} · ${JSON.stringify(l.job.spec)}` : "–"),
      step("architecture", l.architecture ? `${TDB.shortId(l.architecture._id)} ${JSON.stringify(Object.fromEntries(Object.entries(l.architecture).filter(([k]) => !k.startsWith("_"))))}` : "–"),
      step("data", Object.keys(data).length ? JSON.stringify(data) : "–")));
  }

  TDB.pages.jobs = async function (content, { study }) {
    let status = "";
    const counts = el("div", { class: "stats", id: "job-counts" });
    const jobsBox = el("div", { id: "jobs" }), workersBox = el("div", { id: "workers" });
    const updated = el("span", { class: "muted", id: "updated" });
    content.replaceChildren(el("div", { class: "live" }, el("span", { class: "dot" }), " live · ", updated), counts,
      TDB.section("Jobs", jobsBox), TDB.section("Workers", workersBox));
    async function refresh() {
      const q = await api(studyPath(study, "/jobs"), { status, limit: 200 });
      counts.replaceChildren(...Object.entries(q.counts).map(([s, n]) => el("button", {
        class: `stat status-${s}${status === s ? " active" : ""}`, dataset: { status: s }, onclick: () => { status = status === s ? "" : s; refresh(); } },
        el("div", { class: "stat-value", text: n }), el("div", { class: "stat-label", text: s }))));
      jobsBox.replaceChildren(TDB.table([
        { key: "id", label: "job", cell: (j) => el("code", { title: j.id, text: TDB.shortId(j.id) }) },
        { key: "status", label: "status", cell: (j) => TDB.badge(j.status) },
        { key: "spec", label: "spec", value: (j) => JSON.stringify(j.spec), cell: (j) => TDB.jsonCell(j.spec, 90) },
        { key: "tags", label: "tags", value: (j) => JSON.stringify(j.tags), cell: (j) => TDB.jsonCell(j.tags, 40) },
        { key: "worker", label: "worker" },
        { key: "lease_until", label: "lease", cell: (j) => j.status === "running" && j.lease_until ? `${Math.round(j.lease_until - Date.now() / 1000)} s left` : "–" },
        { key: "heartbeat", label: "heartbeat", cell: (j) => TDB.fmtAgo(j.heartbeat) },
        { key: "attempts", label: "attempts", cls: "num", cell: (j) => `${j.attempts}/${j.max_attempts}` },
        { key: "created", label: "queued", cell: (j) => TDB.fmtTime(j.created) },
        { key: "result", label: "result", value: (j) => j.result === null ? null : JSON.stringify(j.result), cell: (j) => TDB.jsonCell(j.result, 70) },
      ], q.jobs, { empty: status ? `no ${status} jobs` : "the queue is empty", cls: "jobs-table" }));
      workersBox.replaceChildren(TDB.table([
        { key: "name", label: "worker" }, { key: "role", label: "role" },
        { key: "alive", label: "state", cell: (w) => TDB.badge(w.state === "running" ? (w.alive ? "alive" : "silent") : w.state) },
        { key: "age_s", label: "last heartbeat", cls: "num", cell: (w) => `${TDB.fmtValue(Math.round(w.age_s))} s ago` },
        { key: "job", label: "job", cell: (w) => w.job ? TDB.shortId(w.job) : "–" },
        { key: "host", label: "host" },
      ], q.workers, { empty: "no worker has run in this study", cls: "workers-table" }));
      updated.textContent = `updated ${TDB.fmtTime(q.at)}`;
    }
    await refresh();
    let busy = false;
    setInterval(async () => {
      if (busy || document.hidden) return;
      busy = true;
      try { await refresh(); } catch (e) { updated.textContent = `refresh failed: ${e.message}`; } finally { busy = false; }
    }, POLL_MS);
  };

  TDB.pages.data = async function (content, { study }) {
    const params = new URLSearchParams(window.location.search);
    let query = params.get("q") || "", page = 1;
    const dataset = params.get("dataset") || "";
    const perPage = 24;
    const grid = el("div", { class: "samples", id: "samples" });
    const pager = el("div", { class: "pager", id: "pager" });
    const datasets = el("div", { id: "datasets" });
    content.replaceChildren(TDB.queryBox('query, e.g. {"split": "train", "label": {"$in": [3, 5]}}', query, (text, message) => { query = text; page = 1; load(message); }),
      pager, grid, datasets);
    async function load(message) {
      try {
        const answer = await api(studyPath(study, "/data"), { q: query, page, per_page: perPage, dataset });
        if (message) message.textContent = "";
        draw(answer);
      } catch (e) {
        if (message && e.status === 400) message.textContent = e.message; else TDB.showError(grid, e);
      }
    }
    function draw(answer) {
      const pages = Math.max(1, Math.ceil(answer.total / answer.per_page));
      pager.replaceChildren(el("span", { class: "pager-buttons" }, el("button", { text: "‹ prev", disabled: page <= 1, onclick: () => { page -= 1; load(); } }),
        el("span", { class: "muted", text: ` page ${page} of ${pages} · ${answer.total} sample(s) ` }),
        dataset ? el("span", { class: "chip big", id: "dataset-chip" }, `dataset ${dataset} `, el("a", { href: pagePath(study, "/data"), text: "×", title: "all samples" })) : null,
        el("button", { text: "next ›", disabled: page >= pages, onclick: () => { page += 1; load(); } })));
      grid.replaceChildren(...answer.samples.map((s) => {
        const fields = Object.entries(s.fields);
        const images = fields.filter(([, f]) => f.thumbnail).map(([name, f]) => el("figure", {},
          el("img", { class: "thumb", src: f.thumbnail, alt: `${name} of ${s.id}`, loading: "lazy", dataset: { field: name } }),
          el("figcaption", { text: `${name} ${f.shape ? f.shape.join("×") : ""}` })));
        const arrays = fields.filter(([, f]) => f.type === "array").map(([name, f]) => el("div", { class: "array" },
          el("strong", { text: name }), ` ${f.dtype} [${f.shape.join("×")}]`,
          f.min !== undefined ? el("span", { class: "muted", text: ` min ${TDB.fmtValue(f.min)} · max ${TDB.fmtValue(f.max)} · mean ${TDB.fmtValue(f.mean)}` }) : null));
        return el("div", { class: "sample", dataset: { id: s.id } },
          el("div", { class: "sample-images" }, images),
          el("div", { class: "sample-label" }, "label ", el("strong", { text: TDB.fmtValue(s.label) })),
          el("div", { class: "tags" }, Object.entries(s.tags).map(([k, v]) => el("span", { class: "chip", text: `${k}: ${TDB.fmtValue(v)}` }))),
          arrays, el("code", { class: "sample-id", title: s.id, text: TDB.shortId(s.id) }));
      }));
      if (!answer.samples.length) grid.append(el("p", { class: "muted", text: "no samples match" }));
    }
    await load(null);
    const d = await api(studyPath(study, "/datasets"));
    datasets.replaceChildren(TDB.section(`Dataset versions (${d.datasets.length})`, TDB.table(
      [...new Set(d.datasets.flatMap((x) => Object.keys(x)))].filter((k) => !k.startsWith("_") || k === "_created").slice(0, 8)
        .map((k) => ({ key: k, label: k, cell: (x) => k === "name" ? el("a", { href: pagePath(study, `/data?dataset=${encodeURIComponent(x.name)}`), text: x.name })
          : k.includes("created") || k === "at" ? TDB.fmtTime(x[k]) : TDB.fmtValue(x[k]) })),
      d.datasets, { empty: "no dataset versions yet" })));
  };
})();
