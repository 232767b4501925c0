"""The UI in a real Chromium (Debian's /usr/bin/chromium driven by Playwright) against a filled warehouse.

Each page loads with no console error; the runs table lists and sorts the
runs; the chart draws the selected runs' curves; a query in the data browser
filters the thumbnails; the jobs page follows a job a worker claims and
completes.  With ``TENSORDB_UI_SCREENSHOTS=1`` the tests also write
docs/img/ui-*.png (the README's screenshots).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from uiserver import Served, repo_root

import tensordb_core as tdb
from tensordb_core.ui.app import UISettings, create_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = os.environ.get("TENSORDB_UI_SCREENSHOTS") == "1"


@pytest.fixture(scope="module")
def server(filled, ui_db) -> Iterator[Served]:
    shown_uri = "./warehouse" if SCREENSHOTS else filled[0]  # screenshots for the README, not of a tmp path
    served = Served(create_app(UISettings(db=ui_db, uri=shown_uri, default_study="vision")))
    yield served
    served.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        # Debian's browser, not one Playwright downloaded: the version is the one /usr/bin/chromium reports.
        assert chromium.version in subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, check=True).stdout
        yield chromium
        chromium.close()


@pytest.fixture
def console_errors() -> list[str]:
    """What the page logged as an error; a test that provokes one on purpose takes it out of the list."""
    return []


@pytest.fixture
def page(browser, console_errors) -> Iterator[Page]:
    """A fresh page that records console errors and uncaught exceptions; the test fails on any."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    tab.set_default_timeout(8000)
    errors = console_errors
    tab.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    yield tab
    context.close()
    assert errors == []


def snapshot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=str(repo_root() / "docs" / "img" / f"ui-{name}.png"), full_page=True)


@pytest.mark.parametrize("path, ready", [
    ("/", "table.studies-table a"),
    ("/studies/vision/runs", "table.runs-table tbody tr"),
    ("/studies/vision/models", "section.model"),
    ("/studies/vision/jobs", "table.jobs-table tbody tr"),
    ("/studies/vision/data", ".sample img.thumb"),
])
def test_every_page_loads_without_console_errors(server, page, path, ready) -> None:
    page.goto(server.url + path)
    page.wait_for_selector(ready)
    page.wait_for_load_state("networkidle")
    assert page.locator("#content .error").count() == 0


def test_run_page_shows_curves_and_artifacts(server, page, filled) -> None:
    page.goto(f"{server.url}/studies/vision/runs/{filled[1]['runs'][0]}")
    page.wait_for_selector("#chart canvas")
    expect(page.locator("#title")).to_have_text("Run mlp-lr0.1")
    expect(page.locator("#artifacts .artifact")).to_have_count(4)
    expect(page.locator(".artifact[data-name='notes.txt'] pre")).to_contain_text("training log of lr=0.1")
    assert "null" not in page.locator("#content").inner_text()  # an absent job shows nothing, not "null"
    page.wait_for_load_state("networkidle")
    assert page.evaluate("() => document.querySelector(\".artifact[data-name='sample.png'] img\").naturalWidth") == 24
    page.wait_for_load_state("networkidle")


def test_runs_table_lists_the_runs_and_sorts_by_any_column(server, page, console_errors) -> None:
    page.goto(server.url + "/studies/vision/runs")
    rows = page.locator("table.runs-table tbody tr")
    expect(rows).to_have_count(3)
    page.click("table.runs-table th[data-key='params.lr']")
    expect(rows.first.locator("td").nth(1)).to_have_text("mlp-lr0.01")
    page.click("table.runs-table th[data-key='params.lr']")
    expect(rows.first.locator("td").nth(1)).to_have_text("mlp-lr0.1")
    page.fill("#query", '{"status": "failed"}')
    page.click("form.query-form button")
    expect(rows).to_have_count(1)
    page.fill("#query", '{"status": ')
    page.click("form.query-form button")
    expect(page.locator("#query-error")).to_contain_text("must be a JSON object")
    # The browser logs the deliberate 400 itself; nothing else may have gone wrong.
    assert console_errors == [("console: Failed to load resource: the server responded with a status of 400 "
                              "(Bad Request)")]
    console_errors.clear()


def test_chart_draws_the_selected_runs_curves(server, page) -> None:
    page.goto(server.url + "/studies/vision/runs")
    for box in page.locator("input.pick").all():
        box.check()
    page.wait_for_selector("#chart canvas")
    expect(page.locator("#chart")).to_have_attribute("data-series", "3")
    page.select_option("#metric", "loss")
    expect(page.locator("#chart")).to_have_attribute("data-points", "60")  # 20 steps x 3 runs
    drawn = page.evaluate("""() => { const u = TDB.charts[TDB.charts.length - 1];
        return { series: u.series.length, points: u.data.slice(1).map(ys => ys.filter(v => v !== null).length),
                 width: u.over.clientWidth } }""")
    assert drawn["series"] == 4 and drawn["points"] == [20, 20, 20] and drawn["width"] > 300
    page.check("#logscale")
    assert page.evaluate("() => TDB.charts[TDB.charts.length - 1].scales.y.distr") == 3
    expect(page.locator("#params-diff tr.differs")).to_have_count(2)  # lr and layers differ, optimizer does not
    page.uncheck("#logscale")
    page.select_option("#metric", "valid_acc")
    page.wait_for_load_state("networkidle")
    snapshot(page, "runs")


def test_a_query_in_the_data_browser_filters_the_thumbnails(server, page) -> None:
    page.goto(server.url + "/studies/vision/data")
    samples = page.locator("#samples .sample")
    expect(samples).to_have_count(8)
    page.fill("#query", '{"colour": "blue"}')
    page.click("form.query-form button")
    expect(samples).to_have_count(3)
    expect(page.locator("#samples .chip", has_text="colour: red")).to_have_count(0)
    page.wait_for_load_state("networkidle")
    loaded = page.evaluate("() => [...document.querySelectorAll('img.thumb')].map(i => i.complete && i.naturalWidth)")
    assert len(loaded) == 3 and all(w and w > 0 for w in loaded)
    page.fill("#query", "")
    page.click("form.query-form button")
    expect(samples).to_have_count(8)
    page.wait_for_load_state("networkidle")
    assert "null" not in page.locator("#content").inner_text()
    snapshot(page, "data")
    page.click("#datasets a:text('squares-v1')")  # a dataset version's pinned samples
    expect(page.locator("#dataset-chip")).to_contain_text("squares-v1")
    expect(samples).to_have_count(6)


def test_models_page_shows_aliases_history_and_lineage(server, page) -> None:
    page.goto(server.url + "/studies/vision/models")
    expect(page.locator("table.alias-history tbody tr")).to_have_count(3)
    page.locator("table.versions button", has_text="lineage").first.click()
    expect(page.locator("#lineage")).to_contain_text("mlp-lr0.1")
    expect(page.locator("#lineage")).to_contain_text('"split":"train"')
    snapshot(page, "models")


def test_jobs_page_follows_a_job_through_its_states(server, page, filled) -> None:
    page.goto(server.url + "/studies/vision/jobs")
    running = page.locator("#job-counts [data-status='running'] .stat-value")
    done = page.locator("#job-counts [data-status='done'] .stat-value")
    expect(running).to_have_text("0")
    with tdb.connect(filled[0], study="vision") as db:
        job = db.pop_job({"type": "train"}, lease_s=300, worker="browser-test-worker")
        expect(running).to_have_text("1")
        expect(page.locator("table.jobs-table td", has_text="browser-test-worker")).to_have_count(1)
        snapshot(page, "jobs")
        job.complete({"acc": 0.95})
        expect(done).to_have_text("2")
        expect(running).to_have_text("0")
