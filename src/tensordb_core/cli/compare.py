"""``tensordb compare``: every run of a study side by side, as a table and as learning curves.

A *run* is one train job (its parameter sets carry ``job``); parameter sets
saved outside a job are grouped by their lineage's run id instead.  For each
run the table shows its hyper-parameters, the best value of the ranking
metric and the other metrics of that best parameter set, the steps trained,
how many parameter sets it saved and its wall time.  ``--plot out.png`` draws
the training loss (from the step logs) and the ranking metric (from the
saved parameter sets, including scores an evaluator added later) of every
run against the step — the picture a user would rather look at than read.

Matplotlib is an optional extra (``pip install 'tensordb[plot]'``); it is
imported only when a plot is asked for, and drawn without pyplot's global
state (safe in servers and threads).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tensordb_core.cli.tables import number, render
from tensordb_core.errors import InvalidQuery, MissingDependency
from tensordb_core.warehouse import jobs as jobs_mod
from tensordb_core.warehouse.handle import TensorDB
from tensordb_core.warehouse.params import COLLECTION as PARAMS

#: Parameter fields compare reads (never the archive itself).
_PARAM_FIELDS = {"_id": 1, "_seq": 1, "_created": 1, "metrics": 1, "step": 1, "job": 1, "hyper": 1, "lineage": 1,
                 "epoch": 1, "round": 1}


@dataclass
class Run:
    """One run: its job (if any), saved parameter documents in save order, and its log run ids."""

    key: str
    job: dict[str, Any] | None = None
    params: list[dict[str, Any]] = field(default_factory=list)
    run_ids: set[str] = field(default_factory=set)

    @property
    def hyper(self) -> dict[str, Any]:
        if self.job is not None and isinstance(self.job.get("spec"), Mapping):
            return dict(self.job["spec"].get("hyper") or {})
        return dict(next((p["hyper"] for p in self.params if isinstance(p.get("hyper"), Mapping)), {}))

    @property
    def steps(self) -> int | None:
        steps = [p["step"] for p in self.params if isinstance(p.get("step"), int)]
        result = (self.job or {}).get("result") or {}
        if isinstance(result, Mapping) and isinstance(result.get("steps"), int):
            steps.append(result["steps"])
        return max(steps) if steps else None

    @property
    def wall_s(self) -> float | None:
        result = (self.job or {}).get("result") or {}
        if isinstance(result, Mapping) and isinstance(result.get("seconds"), (int, float)):
            return float(result["seconds"])
        times = [p["_created"] for p in self.params if isinstance(p.get("_created"), (int, float))]
        start = (self.job or {}).get("started") or (min(times) if times else None)
        if start is None:
            return None
        end = time.time() if (self.job or {}).get("status") == "running" else (max(times) if times else None)
        return None if end is None else max(0.0, end - float(start))

    def metric_values(self, metric: str) -> list[tuple[int, float]]:
        """``(step, value)`` of ``metric`` over the run's saved parameter sets (numbers only)."""
        out = []
        for i, p in enumerate(self.params):
            value = (p.get("metrics") or {}).get(metric)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out.append((int(p.get("step") if isinstance(p.get("step"), int) else i), float(value)))
        return out

    def round_starts(self) -> list[int]:
        """Steps where a continuous run started a new round (new data had arrived)."""
        last_step: dict[int, int] = {}
        for p in self.params:
            if isinstance(p.get("round"), int) and isinstance(p.get("step"), int):
                last_step[p["round"]] = max(last_step.get(p["round"], 0), p["step"])
        return [last_step[r - 1] for r in sorted(last_step) if r >= 1 and r - 1 in last_step]

    def best(self, metric: str, mode: str) -> dict[str, Any] | None:
        scored = [p for p in self.params if isinstance((p.get("metrics") or {}).get(metric), (int, float))]
        if not scored:
            return None
        pick = max if mode == "max" else min
        return pick(scored, key=lambda p: p["metrics"][metric])


def collect_runs(db: TensorDB) -> list[Run]:
    """Every run of the study: train jobs (even those that saved nothing yet) and job-less parameter runs."""
    runs: dict[str, Run] = {}
    for job in db.index.find(jobs_mod.COLLECTION, db.scope.query({}), sort=[("_seq", 1)]):
        if job.get("type", "train") == "train":
            runs[job["_id"]] = Run(job["_id"], job=job)
    for doc in db.index.find(PARAMS, db.scope.query({}), sort=[("_seq", 1)], projection=_PARAM_FIELDS):
        lineage = doc.get("lineage") or {}
        key = doc.get("job") or lineage.get("job") or lineage.get("run") or "(no run)"
        run = runs.setdefault(key, Run(key))
        run.params.append(doc)
        if lineage.get("run"):
            run.run_ids.add(lineage["run"])
    return list(runs.values())


def resolve_metric(runs: Sequence[Run], metric: str) -> str:
    """``metric`` itself if any run has it; else the one metric name ending in ``_<metric>`` (valid_ first)."""
    names = {k for r in runs for p in r.params for k in (p.get("metrics") or {})}
    if metric in names or not names:
        return metric
    candidates = sorted((n for n in names if n.endswith(f"_{metric}")),
                        key=lambda n: (not n.startswith("valid_"), not n.startswith("test_"), n))
    if not candidates:
        raise InvalidQuery(f"no run has a metric {metric!r}; metrics here: {', '.join(sorted(names))}")
    return candidates[0]


def compare_runs(db: TensorDB, *, metric: str = "acc", mode: str = "max") -> tuple[str, list[dict[str, Any]]]:
    """``(resolved metric, rows)``: one row per run, the best first."""
    if mode not in ("max", "min"):
        raise InvalidQuery(f"mode must be 'max' or 'min', not {mode!r}")
    runs = collect_runs(db)
    metric = resolve_metric(runs, metric)
    rows = []
    for run in runs:
        best = run.best(metric, mode)
        job = run.job or {}
        rows.append({
            "run": run.key, "status": job.get("status", "-" if run.job is None else None), "hyper": run.hyper,
            f"best_{metric}": best["metrics"][metric] if best else None,
            "best_metrics": {k: v for k, v in (best or {}).get("metrics", {}).items() if k != metric},
            "best_id": best["_id"] if best else None, "steps": run.steps, "saved": len(run.params),
            "wall_s": run.wall_s, "worker": job.get("worker"),
        })
    sign = -1 if mode == "max" else 1
    rows.sort(key=lambda r: (r[f"best_{metric}"] is None, sign * (r[f"best_{metric}"] or 0)))
    return metric, rows


def format_rows(metric: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """The table ``tensordb compare`` prints."""
    if not rows:
        return "no runs in this study"
    others = sorted({k for r in rows for k in r["best_metrics"]})
    head = ["run", "status", "hyper", f"best {metric}", *others, "steps", "saved", "wall s", "worker"]

    cells = []
    for r in rows:
        hyper = " ".join(f"{k}={v}" for k, v in sorted(r["hyper"].items())) or "-"
        cells.append([r["run"][-8:], str(r["status"] or "-"), hyper, number(r[f"best_{metric}"], ".4f"),
                      *(number(r["best_metrics"].get(o), ".4f") for o in others),
                      number(r["steps"], "d"), str(r["saved"]), number(r["wall_s"], ".1f"), str(r["worker"] or "-")])
    return render(head, cells)


def learning_curves(db: TensorDB, runs: Sequence[Run], metric: str) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Per run key: ``{"train_loss": [(step, loss)], metric: [(step, value)]}``."""
    owner = {rid: run.key for run in runs for rid in run.run_ids}
    curves: dict[str, dict[str, list[tuple[int, float]]]] = {
        run.key: {"train_loss": [], metric: run.metric_values(metric)} for run in runs}
    if owner:
        for doc in db.find_logs("train", {"run": {"$in": sorted(owner)}}):
            loss = (doc.get("metrics") or {}).get("loss")
            if isinstance(loss, (int, float)) and doc.get("run") in owner:
                curves[owner[doc["run"]]]["train_loss"].append((int(doc["step"]), float(loss)))
    return curves


def _smooth(values: list[float], width: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= width:
            acc -= values[i - width]
        out.append(acc / min(i + 1, width))
    return out


def plot_runs(db: TensorDB, path: str, *, metric: str = "valid_acc", mode: str = "max",
              title: str | None = None) -> str:
    """Draw every run's learning curves into ``path`` (PNG, SVG or PDF by extension); returns the metric drawn."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependency("plotting needs matplotlib: pip install 'tensordb[plot]'") from exc
    metric, rows = compare_runs(db, metric=metric, mode=mode)
    runs = {r.key: r for r in collect_runs(db)}
    ordered = [runs[row["run"]] for row in rows if row["run"] in runs]
    curves = learning_curves(db, ordered, metric)
    fig = Figure(figsize=(11, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    loss_ax, metric_ax = fig.subplots(1, 2)
    for run, row in zip(ordered, rows):
        hyper = ", ".join(f"{k}={v}" for k, v in sorted(row["hyper"].items()) if k != "seed")
        best = row[f"best_{metric}"]
        label = f"{run.key[-6:]} {hyper}" + (f" (best {best:.3f})" if isinstance(best, float) else "")
        losses = sorted(curves[run.key]["train_loss"])
        line = None
        if losses:
            width = max(1, len(losses) // 50)
            (line,) = loss_ax.plot([s for s, _ in losses], _smooth([v for _, v in losses], width), lw=1.4, label=label)
        points = sorted(curves[run.key][metric])
        if points:
            (line,) = metric_ax.plot([s for s, _ in points], [v for _, v in points], marker="o", ms=3, lw=1.4,
                                     label=label, color=line.get_color() if line is not None else None)
        for step in run.round_starts():
            for ax in (loss_ax, metric_ax):
                ax.axvline(step, ls=":", lw=1, color=line.get_color() if line is not None else "gray", alpha=0.7)
    loss_ax.set(title="training loss (moving average)", xlabel="step", ylabel="loss")
    metric_ax.set(title=f"{metric} of saved parameters", xlabel="step", ylabel=metric)
    for ax in (loss_ax, metric_ax):
        ax.grid(alpha=0.3)
    deployed = {h["target"] for h in db.alias_history("deployed")} if db.study is not None else set()
    stars = [(p["step"], p["metrics"][metric]) for run in ordered for p in run.params
             if p["_id"] in deployed and isinstance(p.get("step"), int)
             and isinstance((p.get("metrics") or {}).get(metric), (int, float))]
    if stars:
        metric_ax.scatter([s for s, _ in stars], [v for _, v in stars], marker="*", s=140, color="gold",
                          edgecolors="black", linewidths=0.6, zorder=5, label="served by the deployer")
    if any(run.round_starts() for run in ordered):
        metric_ax.plot([], [], ls=":", lw=1, color="gray", label="new data arrived: a new round")
    if metric_ax.lines:
        metric_ax.legend(fontsize=7, loc="lower right" if mode == "max" else "upper right")
    elif loss_ax.lines:
        loss_ax.legend(fontsize=7)
    fig.suptitle(title or f"study {db.study}: {len(ordered)} run(s)")
    fig.tight_layout()
    fig.savefig(path)
    return metric
