"""The UI's JSON API over a real warehouse (tests/ui/conftest.py), through Starlette's TestClient."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

import tensordb_core as tdb
from tensordb_core.ui import api
from tensordb_core.ui.app import SECURITY_HEADERS, UISettings, create_app


def test_studies_list_every_study_with_its_counts(client) -> None:
    studies = {s["study"]: s for s in client.get("/api/studies").json()["studies"]}
    assert set(studies) - {"lapsed"} == {"vision", "tabular"}  # "lapsed": test_browsing_everything_changes_nothing
    assert studies["vision"]["counts"] == {"samples": 8, "runs": 3, "parameter_sets": 3, "jobs": 3,
                                           "registered_models": 1}
    assert studies["tabular"]["counts"]["runs"] == 1 and studies["tabular"]["counts"]["samples"] == 0
    assert studies["vision"]["last_activity"] <= time.time()


def test_study_detail_has_queue_workers_and_dataset_versions(client) -> None:
    detail = client.get("/api/studies/vision").json()
    assert detail["jobs"] == {"queued": 2, "running": 0, "done": 1, "dead": 0}
    assert [w["name"] for w in detail["workers"]] == ["trainer@test"]
    assert [d["name"] for d in detail["datasets"]] == ["squares-v1"]
    assert client.get("/api/studies/vision/datasets").json()["datasets"][0]["count"] == 6


def test_runs_table_has_params_latest_metrics_status_and_duration(client, filled) -> None:
    answer = client.get("/api/studies/vision/runs").json()
    assert answer["total"] == 3 and answer["params"] == ["layers", "lr", "optimizer"]
    assert answer["metrics"] == ["loss", "valid_acc"]
    by_name = {r["name"]: r for r in answer["runs"]}
    assert by_name["mlp-lr0.01"]["status"] == "failed" and "diverged" in by_name["mlp-lr0.01"]["error"]
    assert by_name["mlp-lr0.1"]["status"] == "finished" and by_name["mlp-lr0.1"]["params"]["lr"] == 0.1
    assert by_name["mlp-lr0.1"]["metrics"]["valid_acc"] == pytest.approx(0.5 + 0.02 * 19 / 3)
    assert all(r["duration_s"] >= 0 for r in answer["runs"])


def test_runs_filter_with_the_query_language_and_sort(client) -> None:
    q = json.dumps({"params.lr": {"$lt": 0.05}, "status": "finished"})
    assert [r["name"] for r in client.get("/api/studies/vision/runs", params={"q": q}).json()["runs"]] == ["mlp-lr0.03"]
    ranked = client.get("/api/studies/vision/runs", params={"sort": "metrics.valid_acc:-1"}).json()["runs"]
    assert [r["name"] for r in ranked] == ["mlp-lr0.01", "mlp-lr0.03", "mlp-lr0.1"]
    ascending = client.get("/api/studies/vision/runs", params={"sort": "params.lr"}).json()["runs"]
    assert [r["params"]["lr"] for r in ascending] == [0.01, 0.03, 0.1]


@pytest.mark.parametrize("params, status, words", [
    ({"q": "{bad json"}, 400, "must be a JSON object"),
    ({"q": "[1, 2]"}, 400, "not list"),
    ({"q": '{"lr": {"$regexx": 1}}'}, 400, "$regexx"),
    ({"sort": "metrics.acc:sideways"}, 400, "sort"),
    ({"limit": "0"}, 400, "limit"),
    ({"limit": "many"}, 400, "integer"),
])
def test_bad_run_queries_answer_400_naming_the_problem(client, params, status, words) -> None:
    response = client.get("/api/studies/vision/runs", params=params)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


@pytest.mark.parametrize("path, status", [
    ("/api/studies/nope/runs", 404),
    ("/api/studies/bad%20name!/runs", 400),
    ("/api/studies/vision/runs/0000000000000000deadbeef", 404),
    ("/api/studies/vision/runs/0000000000000000deadbeef/metrics", 404),
    ("/api/studies/vision/models/classifier/versions/9", 404),
    ("/api/studies/vision/models/nope/versions/1", 404),
    ("/api/studies/vision/data/0000000000000000deadbeef/thumbnail/image", 404),
    ("/api/studies/vision/jobs?status=sleeping", 400),
    ("/api/studies/vision/data?per_page=5000", 400),
    ("/api/studies/vision/data?page=0", 400),
    ("/api/studies/vision/data?dataset=nope", 404),
    ("/api/nothing-here", 404),
])
def test_unknown_or_malformed_inputs_are_clear_4xx_json(client, path, status) -> None:
    response = client.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json") and response.json()["error"]


def test_run_curves_are_the_logged_steps(client, filled) -> None:
    run = filled[1]["runs"][0]
    series = {s["name"]: s for s in client.get(f"/api/studies/vision/runs/{run}/metrics").json()["series"]}
    assert set(series) == {"loss", "valid_acc"}
    assert series["loss"]["steps"] == list(range(20)) and series["loss"]["values"][0] == 2.0
    assert series["valid_acc"]["steps"] == [4, 9, 14, 19] and series["valid_acc"]["kind"] == "valid"


def test_artifacts_inline_when_safe_downloaded_otherwise(client, filled) -> None:
    run = filled[1]["runs"][0]
    detail = client.get(f"/api/studies/vision/runs/{run}").json()
    assert [a["name"] for a in detail["artifacts"]] == ["config.json", "notes.txt", "sample.png", "weights.bin"]
    base = f"/api/studies/vision/runs/{run}/artifacts"
    text = client.get(f"{base}/notes.txt")
    assert text.headers["content-type"].startswith("text/plain") and text.text.startswith("training log of lr=0.1")
    assert client.get(f"{base}/config.json").json() == {"lr": 0.1, "note": "json artifact"}
    binary = client.get(f"{base}/weights.bin")
    assert binary.headers["content-type"] == "application/octet-stream" and binary.content == b"\x00\x01binary weights"
    assert binary.headers["content-disposition"].startswith("attachment")
    # A file artifact is shown inline only when its bytes are an image or UTF-8 text: the bytes decide, not the name.
    image = client.get(f"{base}/sample.png")
    assert image.headers["content-type"] == "image/png" and "content-disposition" not in image.headers
    assert client.get(f"{base}/sample.png", params={"download": 1}).headers["content-type"] == \
        "application/octet-stream"
    assert [a["shown_as"] for a in detail["artifacts"]] == ["text", "text", "image", None]
    assert client.get(f"{base}/nope.txt").status_code == 404
    assert client.get(f"{base}/..%2Fetc").status_code in (400, 404)


def test_models_versions_aliases_history_and_lineage(client, filled) -> None:
    (model,) = client.get("/api/studies/vision/models").json()["models"]
    assert model["name"] == "classifier" and model["aliases"] == {"production": 2, "staging": 2}
    assert [v["version"] for v in model["versions"]] == [1, 2]
    assert [(h["alias"], h["previous"], h["version"], h["who"]) for h in model["alias_history"]] == [
        ("production", None, 1, "alice"), ("production", 1, 2, "bob"), ("staging", None, 2, "bob")]
    lineage = client.get("/api/studies/vision/models/classifier/versions/1").json()
    assert lineage["version"]["param_id"] == filled[1]["params"][0]
    assert lineage["run"]["id"] == filled[1]["runs"][0] and lineage["run"]["name"] == "mlp-lr0.1"
    assert lineage["architecture"]["name"] == "mlp" and "code" not in lineage["architecture"]
    assert lineage["job"]["id"] == filled[1]["done_job"] and lineage["job"]["status"] == "done"
    assert lineage["data"]["query"] == {"split": "train"} and lineage["data"]["count"] == 6


def test_jobs_by_status_and_workers(client, filled) -> None:
    queue = client.get("/api/studies/vision/jobs").json()
    assert queue["counts"] == {"queued": 2, "running": 0, "done": 1, "dead": 0}
    assert len(queue["jobs"]) == 3 and {j["status"] for j in queue["jobs"]} == {"queued", "done"}
    done = client.get("/api/studies/vision/jobs", params={"status": "done"}).json()["jobs"]
    assert [(j["id"], j["worker"], j["result"]) for j in done] == [(filled[1]["done_job"], "w-done", {"acc": 0.9})]
    assert queue["workers"][0]["role"] == "trainer" and queue["workers"][0]["alive"] is True


def test_data_pages_filter_and_describe_fields(client) -> None:
    first = client.get("/api/studies/vision/data", params={"per_page": 5}).json()
    second = client.get("/api/studies/vision/data", params={"per_page": 5, "page": 2}).json()
    assert first["total"] == second["total"] == 8 and len(first["samples"]) == 5 and len(second["samples"]) == 3
    assert not {s["id"] for s in first["samples"]} & {s["id"] for s in second["samples"]}
    red = client.get("/api/studies/vision/data", params={"q": '{"colour": "red"}'}).json()
    assert red["total"] == 3 and all(s["tags"]["colour"] == "red" for s in red["samples"])
    assert red["samples"][0]["fields"]["image"]["type"] == "image"
    arrays = client.get("/api/studies/vision/data", params={"q": '{"split": "test"}'}).json()["samples"]
    x = arrays[0]["fields"]["x"]
    assert (x["type"], x["shape"], x["dtype"], x["min"], x["max"]) == ("array", [8, 8], "float32", 0.0, 63.0)
    assert arrays[0]["label"] == 3
    pinned = client.get("/api/studies/vision/data", params={"dataset": "squares-v1"}).json()
    assert pinned["total"] == 6 and pinned["dataset"] == "squares-v1"


def test_thumbnails_are_small_pngs_decoded_on_the_server(client) -> None:
    from PIL import Image

    red = client.get("/api/studies/vision/data", params={"q": '{"colour": "red"}', "per_page": 1}).json()
    response = client.get(red["samples"][0]["fields"]["image"]["thumbnail"])
    assert response.headers["content-type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
    assert max(image.shape[:2]) <= 128
    centre = image[image.shape[0] // 2, image.shape[1] // 2]
    assert centre[0] > 200 and centre[2] < 50  # the red square, not the blue
    array = client.get("/api/studies/vision/data", params={"q": '{"split": "test"}', "per_page": 1}).json()
    assert client.get(array["samples"][0]["fields"]["x"]["thumbnail"]).content[:8] == b"\x89PNG\r\n\x1a\n"
    sample = red["samples"][0]["id"]
    missing = client.get(f"/api/studies/vision/data/{sample}/thumbnail/caption")
    assert missing.status_code == 404 and "image" in missing.json()["error"]


def test_every_route_is_read_only(client) -> None:
    for route in client.app.routes:
        if isinstance(route, Route):
            assert route.methods <= {"GET", "HEAD"}, route.path
        else:
            assert isinstance(route, Mount) and route.path == "/static"
    for path in ("/api/studies", "/api/studies/vision/runs", "/api/studies/vision/jobs", "/", "/static/style.css",
                 "/studies/vision/runs"):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            assert client.request(method, path).status_code == 405, (method, path)


def test_browsing_everything_changes_nothing(filled) -> None:
    """A run whose heartbeat lapsed reads killed, but the UI never stores it (search_runs would)."""
    uri, ids = filled
    with tdb.connect(uri, study="lapsed") as writer:  # what a SIGKILLed trainer leaves: running, heartbeat lapsed
        now = time.time()
        writer.index.insert_many("runs", [writer.scope.new_doc(name="stalled", status="running", params={},
                                                               tags={}, metrics={}, started=now - 60, ended=None,
                                                               heartbeat=now - 50, expires=now - 20, lapse_s=30.0)])
    collections = [*api.ACTIVITY, "artifacts", "registered_models", "model_versions", "model_alias_history"]
    with tdb.connect(uri, study="vision", create=False) as db:
        before = {c: (db.index.count(c), db.index.last_seq(c), list(db.index.find(c, {}))) for c in collections}
        client = TestClient(create_app(UISettings(db=db, uri=uri)))
        assert client.get("/api/studies/lapsed/runs").json()["runs"][0]["status"] == "killed"
        paths = ["/api/studies", "/api/studies/vision", "/api/studies/vision/runs", f"/api/studies/vision/runs/{ids['runs'][0]}",
                 f"/api/studies/vision/runs/{ids['runs'][0]}/metrics", "/api/studies/vision/models",
                 "/api/studies/vision/models/classifier/versions/2", "/api/studies/vision/jobs",
                 "/api/studies/vision/data", "/api/studies/vision/datasets", "/", "/studies/vision/data"]
        for path in paths:
            assert client.get(path).status_code == 200, path
        after = {c: (db.index.count(c), db.index.last_seq(c), list(db.index.find(c, {}))) for c in collections}
        stored = next(iter(db.index.find("runs", {"_study": "lapsed"})))["status"]
    assert after == before
    assert stored == "running"  # stored as it was


def test_no_credentials_in_any_page_or_response(filled, ui_db) -> None:
    secret = "Sup3rS3cretPa55"
    client = TestClient(create_app(UISettings(db=ui_db, uri=f"mongodb://alice:{secret}@db.example:27017/lab",
                                              default_study="vision")))
    info = client.get("/api/info").json()
    assert secret not in info["uri"] and "db.example" in info["uri"]
    for path in ("/api/info", "/", "/studies/vision/runs", "/studies/vision/models", "/studies/vision/jobs",
                 "/studies/vision/data", "/api/studies", "/api/studies/vision/jobs"):
        assert secret not in client.get(path).text, path


def test_token_is_enforced_when_set(ui_db, filled) -> None:
    token = "t0ken-for-the-ui"
    client = TestClient(create_app(UISettings(db=ui_db, uri=filled[0], default_study="vision", token=token)))
    for path in ("/api/studies", "/api/studies/vision/runs", "/", "/studies/vision/data", "/static/common.js"):
        refused = client.get(path)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer", path
        assert token not in refused.text
    assert client.get("/api/studies", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/studies", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # A browser opens a page once with ?token=: the token moves into an HttpOnly cookie, out of the address bar.
    opened = client.get(f"/studies/vision/runs?token={token}&q=x", follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == "/studies/vision/runs?q=x"
    assert "httponly" in opened.headers["set-cookie"].lower()
    assert client.get("/api/studies/vision/runs").status_code == 200  # the cookie now rides along
    client.cookies.clear()
    assert client.get("/api/studies/vision/runs").status_code == 401


def test_a_rebound_host_name_is_refused_without_a_token(ui_db, filled) -> None:
    """DNS rebinding: evil.example resolving to 127.0.0.1 lets its page reach the UI, but with its own Host."""
    client = TestClient(create_app(UISettings(db=ui_db, uri=filled[0], allowed_hosts=("127.0.0.1", "localhost",
                                                                                     "::1"))))
    for host in ("127.0.0.1:5000", "localhost:5000", "[::1]:5000", "LOCALHOST"):
        assert client.get("/api/studies", headers={"host": host}).status_code == 200, host
    for host in ("evil.example:5000", "evil.example", "127.0.0.1.evil.example:5000", ""):
        refused = client.get("/api/studies", headers={"host": host})
        assert refused.status_code == 400 and refused.json()["type"] == "BadHost", host


def test_security_headers_on_pages_api_and_static(client) -> None:
    for path in ("/", "/api/studies", "/static/common.js"):
        headers = client.get(path).headers
        for name, value in SECURITY_HEADERS.items():
            assert headers[name] == value, (path, name)


def test_a_slow_request_answers_503_within_the_limit(ui_db, filled, monkeypatch) -> None:
    real = api.search_runs

    def slow(*args, **kwargs):
        time.sleep(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "search_runs", slow)
    client = TestClient(create_app(UISettings(db=ui_db, uri=filled[0], request_timeout_s=0.2)))
    started = time.monotonic()
    response = client.get("/api/studies/vision/runs")
    assert response.status_code == 503 and "longer than 0.2 s" in response.json()["error"]
    assert time.monotonic() - started < 0.9
    assert client.get("/api/studies").status_code == 200


def test_artifact_bytes_decide_what_is_rendered(tmp_path) -> None:
    """An HTML page or SVG logged as .png or .txt is never rendered: only PNG/JPEG bytes and UTF-8 text are."""
    with tdb.connect(str(tmp_path / "w"), study="a") as db, db.start_run("r") as run:
        run.log_artifact(b"<html><script>alert(1)</script></html>", "fake.png")
        run.log_artifact(b"<svg onload=alert(1)>", "drawing.svg")
        run.log_artifact(b"\xff\xfe not utf-8 \x80", "binary.txt")
        run.log_artifact(b"<script>alert(1)</script>", "page.html")
        run.log_artifact(b"epoch,loss\n1,0.5\n", "curve.csv")
        client = TestClient(create_app(UISettings(db=db, uri=str(tmp_path / "w"))))
        base = f"/api/studies/a/runs/{run.id}/artifacts"
        for name in ("fake.png", "drawing.svg", "binary.txt", "page.html"):
            response = client.get(f"{base}/{name}")
            assert response.headers["content-type"] == "application/octet-stream", name
            assert response.headers["content-disposition"].startswith("attachment"), name
        csv = client.get(f"{base}/curve.csv")
        assert csv.headers["content-type"].startswith("text/plain") and csv.text == "epoch,loss\n1,0.5\n"


def test_large_artifacts_stream_as_downloads(tmp_path, monkeypatch) -> None:
    from tensordb_core.ui import app as ui_app
    from tensordb_core.warehouse import artifacts

    monkeypatch.setattr(artifacts, "PART_SIZE", 1000)
    monkeypatch.setattr(ui_app, "INLINE_MAX_BYTES", 2000)
    payload = bytes(range(256)) * 20  # 5,120 bytes: 6 parts
    with tdb.connect(str(tmp_path / "w"), study="a") as db, db.start_run("r") as run:
        run.log_artifact(payload, "big.bin")
        run.log_text("x" * 3000, "big.txt")
        client = TestClient(create_app(UISettings(db=db, uri=str(tmp_path / "w"))))
        base = f"/api/studies/a/runs/{run.id}/artifacts"
        response = client.get(f"{base}/big.bin")
        assert response.content == payload and response.headers["content-length"] == "5120"
        assert client.get(f"{base}/big.txt").headers["content-disposition"].startswith("attachment")  # over the limit


def test_mixed_records_describe_every_binary_field(tmp_path) -> None:
    """Records of one page with different fields: JPEG, an image-shaped mask, raw bytes, a vector."""
    with tdb.connect(str(tmp_path / "w"), study="m") as db:
        db.import_records([{"image": np.zeros((8, 8, 3), np.uint8), "mask": np.eye(8, dtype=np.uint8), "raw": b"abc",
                            "caption": "one"}, {"vec": np.arange(3.0)}], encode={"image": "jpeg"})
        client = TestClient(create_app(UISettings(db=db, uri=str(tmp_path / "w"))))
        first, second = client.get("/api/studies/m/data").json()["samples"]
        assert first["fields"]["image"]["type"] == "image" and first["fields"]["image"]["codec"] == "jpeg"
        assert (first["fields"]["mask"]["max"], first["fields"]["mask"]["shape"]) == (1.0, [8, 8])
        assert first["fields"]["raw"] == {"type": "bytes", "size": 3} and first["tags"] == {"caption": "one"}
        assert second["fields"] == {"vec": {"type": "array", "shape": [3], "dtype": "float64", "min": 0.0,
                                            "max": 2.0, "mean": 1.0}}
        for name in ("image", "mask"):
            assert client.get(first["fields"][name]["thumbnail"]).headers["content-type"] == "image/png"
        assert client.get(f"/api/studies/m/data/{first['id']}/thumbnail/raw").status_code == 400  # not an image
