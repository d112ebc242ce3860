"""Pulling projects straight from a real Label Studio server (tests/labelstudio_server.py).

The projects are created here through the server's API; what a pull gives is compared with
converting the server's own export of the same project (downloaded by the tests' own client),
so the expected rows come from the server, not from the code under test.
"""
from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pytest
from helpers import read_tables, run_cli
from labelstudio_server import Api, free_port

from stream import convert
from stream.tables import TABLES

# Keys of the export that the task API does not give (docs/labelstudio-pull.md), per table's
# `extra`, and typed columns it leaves empty.
EXPORT_ONLY = {"tasks": {"allow_skip"}, "annotations": {"prediction", "unique_id"}}
EXPORT_ONLY_COLUMNS = {"annotations": {"result_count"}}
# Keys only the task API gives: they land in `extra`.
API_ONLY = {"tasks": {"annotators", "completed_at", "annotations_results", "predictions_results",
                      "predictions_score", "file_upload", "storage_filename", "annotations_ids",
                      "predictions_model_versions", "avg_lead_time", "draft_exists",
                      "is_labeled", "overlap"},
            "annotations": {"created_username"}}
VOLATILE = {"created_ago"}  # "0 minutes": rendered at request time, not compared by value

IMAGE = """<View><Image name="img" value="$image"/>
<RectangleLabels name="box" toName="img"><Label value="Car"/><Label value="Person"/></RectangleLabels>
<Choices name="quality" toName="img"><Choice value="ok"/><Choice value="bad"/></Choices>
<Relations><Relation value="next_to"/></Relations></View>"""
NER = """<View><Labels name="label" toName="text"><Label value="PER"/><Label value="ORG"/></Labels>
<Text name="text" value="$text"/><Relations><Relation value="works_at"/></Relations></View>"""
VIDEO = """<View><Labels name="videoLabels" toName="video"><Label value="Car"/></Labels>
<Video name="video" value="$video" framerate="25"/><VideoRectangle name="box" toName="video"/></View>"""
CLASSES = """<View><Text name="text" value="$text"/>
<Choices name="sentiment" toName="text"><Choice value="pos"/><Choice value="neg"/></Choices>
<Rating name="rating" toName="text"/><TextArea name="note" toName="text"/></View>"""


def box(rid: str, x: float, label: str) -> dict:
    return {"id": rid, "from_name": "box", "to_name": "img", "type": "rectanglelabels",
            "original_width": 640, "original_height": 480, "image_rotation": 0,
            "value": {"x": x, "y": 20.25, "width": 30, "height": 100 / 3, "rotation": 0,
                      "rectanglelabels": [label]}}


def image_tasks() -> list[dict]:
    rel = {"from_id": "a", "to_id": "b", "type": "relation", "direction": "right",
           "labels": ["next_to"]}
    return [{"data": {"image": f"https://example.invalid/{i}.jpg"}, "meta": {"batch": i % 2},
             "annotations": [{"result": [box("a", 10 + i, "Car"), box("b", 55.5, "Person"), rel,
                                         {"id": "q", "from_name": "quality", "to_name": "img",
                                          "type": "choices", "value": {"choices": ["ok"]}}],
                              "lead_time": 2.5 + i}],
             "predictions": [{"result": [box("p", 11.125, "Car")], "score": 0.75,
                              "model_version": "m1"}]}
            for i in range(5)] + [{"data": {"image": "https://example.invalid/empty.jpg"}}]


def ner_tasks() -> list[dict]:
    text = "Alice works at Acme in Zürich."
    return [{"data": {"text": text}, "annotations": [{"result": [
        {"id": "p", "from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": 0, "end": 5, "text": "Alice", "labels": ["PER"]}},
        {"id": "o", "from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": 15, "end": 19, "text": "Acme", "labels": ["ORG"]}},
        {"from_id": "p", "to_id": "o", "type": "relation", "direction": "right",
         "labels": ["works_at"]}]}]} for _ in range(3)]


def video_tasks() -> list[dict]:
    seq = [{"frame": f, "enabled": f < 90, "rotation": 0, "x": 10 + f / 10, "y": 10,
            "width": 20, "height": 15.5, "time": f / 25} for f in (1, 30, 60, 90)]
    return [{"data": {"video": f"https://example.invalid/{i}.mp4"}, "annotations": [{"result": [
        {"id": f"v{i}", "from_name": "box", "to_name": "video", "type": "videorectangle",
         "origin": "manual",
         "value": {"framesCount": 100, "duration": 4, "sequence": seq, "labels": ["Car"]}}]}]}
        for i in range(2)]


def class_tasks(n: int, start: int = 0) -> list[dict]:
    return [{"data": {"text": f"text {i}", "n": i}, "annotations": [{"result": [
        {"id": f"s{i}", "from_name": "sentiment", "to_name": "text", "type": "choices",
         "value": {"choices": ["pos" if i % 3 else "neg"]}},
        {"id": f"r{i}", "from_name": "rating", "to_name": "text", "type": "rating",
         "value": {"rating": i % 5 + 1}},
        {"id": f"t{i}", "from_name": "note", "to_name": "text", "type": "textarea",
         "value": {"text": [f"note {i}"]}}], "lead_time": i / 7}]}
        for i in range(start, start + n)]


@pytest.fixture(scope="session")
def api(label_studio) -> Api:
    return Api(label_studio)


@pytest.fixture(scope="session")
def projects(api) -> dict[str, int]:
    """The projects of the tests, created once; some tasks get a draft, an extra cancelled
    annotation and an edited annotation, as a real project has."""
    ids = {}
    for name, config, tasks in (("image", IMAGE, image_tasks()), ("ner", NER, ner_tasks()),
                                ("video", VIDEO, video_tasks()),
                                ("classes", CLASSES, class_tasks(40)),
                                ("big", CLASSES, class_tasks(2500))):
        ids[name] = api.project(name, config)
        api.import_tasks(ids[name], tasks)
    first, second = api.task_ids(ids["image"])[:2]
    api.call("POST", f"/api/tasks/{second}/drafts", {"lead_time": 1.5, "result": [
        {"id": "d", "from_name": "quality", "to_name": "img", "type": "choices",
         "value": {"choices": ["bad"]}}]})
    api.call("POST", f"/api/tasks/{second}/annotations/", {"result": [], "was_cancelled": True})
    ann = api.call("GET", f"/api/tasks/{first}/annotations/")[0]["id"]
    api.call("PATCH", f"/api/annotations/{ann}/", {"lead_time": 9.75})
    return ids


@pytest.fixture
def token(label_studio, monkeypatch) -> str:
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    return label_studio.token


def rows(tables: dict[str, pa.Table]) -> dict[str, list[dict]]:
    """Rows without `file` (a URI against a file name), `extra` parsed."""
    out = {}
    for name, t in tables.items():
        rs = t.drop_columns(["file"]).to_pylist()
        for r in rs:
            r["extra"] = json.loads(r["extra"]) if r["extra"] else {}
        out[name] = rs
    return out


def assert_pull_equals_export(pulled: dict[str, pa.Table], exported: dict[str, pa.Table]) -> None:
    """Every typed column, `data` and `value` equal; `extra` equal but for the documented
    export-only and API-only keys."""
    got, want = rows(pulled), rows(exported)
    for table in TABLES:
        assert len(got[table]) == len(want[table]), table
        skip = EXPORT_ONLY_COLUMNS.get(table, set()) | {"extra"}
        for g, w in zip(got[table], want[table]):
            assert {k: v for k, v in g.items() if k not in skip} == \
                   {k: v for k, v in w.items() if k not in skip}, table
            ge, we = g["extra"], w["extra"]
            assert set(we) - set(ge) <= EXPORT_ONLY.get(table, set()), (table, we, ge)
            assert set(ge) - set(we) <= API_ONLY.get(table, set()), (table, we, ge)
            shared = (set(ge) & set(we)) - VOLATILE
            assert {k: ge[k] for k in shared} == {k: we[k] for k in shared}, table


def export_tables(api: Api, project: int, tmp_path: Path) -> dict[str, pa.Table]:
    path = api.export(project, tmp_path / f"export-{project}.json")
    convert([path], tmp_path / f"export-{project}-out", workers=1)
    return read_tables(tmp_path / f"export-{project}-out")


def pull(uri: str, out: Path) -> dict[str, pa.Table]:
    convert([uri], out)
    return read_tables(out)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["image", "ner", "video", "classes"])
def test_pull_equals_the_servers_export(name, label_studio, api, projects, token, tmp_path):
    project = projects[name]
    pulled = pull(label_studio.uri(project, page_size=4), tmp_path / "pulled")
    exported = export_tables(api, project, tmp_path)
    assert_pull_equals_export(pulled, exported)
    tasks = pulled["tasks"]
    assert set(tasks.column("file").to_pylist()) == {label_studio.uri(project)}
    assert label_studio.token not in json.dumps(tasks.to_pylist(), default=str)
    if name == "image":  # the draft, the cancelled annotation and the predictions came along
        kinds = pulled["annotations"].column("kind").to_pylist()
        assert kinds.count("draft") == 1 and kinds.count("prediction") == 5
        assert pulled["annotations"].column("was_cancelled").to_pylist().count(True) == 1
        assert pulled["relations"].num_rows == 5
    if name == "video":
        assert pulled["keyframes"].num_rows == 8


@pytest.mark.slow
def test_big_project_in_pages(label_studio, api, projects, token, tmp_path):
    """A few thousand tasks, page by page through a proxy that records the requests: only the
    task API is used (never the export), one request per page."""
    project = projects["big"]
    with Proxy(label_studio.url) as proxy:
        pulled = pull(label_studio.uri(project, base=proxy.url, page_size=1000),
                      tmp_path / "pulled")
    assert_pull_equals_export(pulled, export_tables(api, project, tmp_path))
    pages = [p for m, p, s in proxy.log if p.startswith("/api/tasks/")]
    assert len(pages) == 3  # 1000, 1000, then a short page of 500
    assert not [p for m, p, s in proxy.log if "export" in p]


@pytest.mark.slow
def test_every_project(label_studio, api, projects, token, tmp_path):
    pulled = pull(label_studio.uri("*"), tmp_path / "all")
    per_project: dict[str, int] = {}
    for p in pulled["tasks"].column("project_id").to_pylist():
        per_project[p] = per_project.get(p, 0) + 1
    for pid in projects.values():
        assert per_project[str(pid)] == len(api.task_ids(pid))


def test_snapshot_export_option(label_studio, api, projects, token, tmp_path):
    """`?via=export`: the server's export file itself, so every column (extra too) equals
    converting that file."""
    project = projects["image"]
    got = rows(pull(label_studio.uri(project, via="export"), tmp_path / "pulled"))
    want = rows(export_tables(api, project, tmp_path))
    for table in TABLES:
        for g, w in zip(got[table], want[table], strict=True):
            for k in VOLATILE:
                g["extra"].pop(k, None), w["extra"].pop(k, None)
            assert g == w, table
    exports = api.call("GET", f"/api/projects/{project}/exports")
    assert [e["title"] for e in exports if e["title"] == "annostream"] == []  # cleaned up


def test_personal_access_token(label_studio, api, projects, monkeypatch, tmp_path):
    """A personal access token (JWT) is exchanged for an access token; a 401 on the way (an
    expired access token) makes the client refresh it once and go on."""
    pat = api.personal_token()
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", pat)
    project = projects["classes"]
    with Proxy(label_studio.url, {"/api/tasks/": [401]}) as proxy:
        pulled = pull(label_studio.uri(project, base=proxy.url, page_size=25),
                      tmp_path / "pulled")
    assert pulled["tasks"].num_rows == 40
    assert [p for _, p, _ in proxy.log].count("/api/token/refresh/") == 2
    assert [s for _, p, s in proxy.log if p.startswith("/api/tasks/")] == [401, 200, 200]


def test_server_errors_are_retried(label_studio, api, projects, token, tmp_path):
    """Two 500s, then the page: the pull goes on and gives the same rows."""
    project = projects["ner"]
    with Proxy(label_studio.url, {"/api/tasks/": [500, 500]}) as proxy:
        pulled = pull(label_studio.uri(project, base=proxy.url), tmp_path / "pulled")
    direct = pull(label_studio.uri(project), tmp_path / "direct")
    assert rows(pulled) == rows(direct)
    assert [s for _, p, s in proxy.log if p.startswith("/api/tasks/")] == [500, 500, 200]


def one_line_error(proc) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_wrong_token(label_studio, projects, monkeypatch, tmp_path):
    secret = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", secret)
    uri = label_studio.uri(projects["image"])
    err = one_line_error(run_cli("convert", uri, "-o", str(tmp_path / "o")))
    assert f"{label_studio.url}/api/projects/{projects['image']}/" in err
    assert "401" in err and secret not in err
    assert not (tmp_path / "o" / "_manifest.json").exists()


def test_wrong_project(label_studio, token, tmp_path):
    err = one_line_error(run_cli("convert", label_studio.uri(987654), "-o", str(tmp_path / "o")))
    assert "404" in err and "/api/projects/987654/" in err and token not in err


def test_server_down(token, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    err = one_line_error(run_cli("convert", f"labelstudio+{url}/projects/1?retries=1",
                                 "-o", str(tmp_path / "o")))
    assert url in err and "connection refused" in err and token not in err


def test_no_token_and_no_credentials_in_uri(label_studio, monkeypatch, tmp_path):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    err = one_line_error(run_cli("convert", label_studio.uri(1), "-o", str(tmp_path / "o")))
    assert "LABEL_STUDIO_API_KEY" in err
    host = label_studio.url.split("//")[1]
    err = one_line_error(run_cli("convert", f"labelstudio+http://sekrit@{host}/projects/1",
                                 "-o", str(tmp_path / "o")))
    assert "sekrit" not in err and "LABEL_STUDIO_API_KEY" in err


# -- a fault-injecting proxy on 127.0.0.1 ---------------------------------------------------
class Proxy:
    """Forwards every request to `target`, except that the first requests whose path starts
    with a key of `faults` get that key's statuses instead (one each, in order). `log` holds
    (method, path, status) of every request."""

    def __init__(self, target: str, faults: dict[str, list[int]] | None = None) -> None:
        self.target = urllib.parse.urlsplit(target)
        self.faults = {k: list(v) for k, v in (faults or {}).items()}
        self.log: list[tuple[str, str, int]] = []
        self.queries: list[str] = []  # the query strings of /api/tasks/ requests
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                with proxy.lock:
                    key = next((k for k in proxy.faults if path.startswith(k)
                                and proxy.faults[k]), None)
                    fault = proxy.faults[key].pop(0) if key else None
                if fault is not None:
                    data = json.dumps({"detail": "injected"}).encode()
                    status, headers = fault, [("Content-Type", "application/json")]
                else:
                    conn = http.client.HTTPConnection(proxy.target.hostname, proxy.target.port,
                                                      timeout=300)
                    fwd = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection")}
                    conn.request(self.command, self.path, body=body or None, headers=fwd)
                    resp = conn.getresponse()
                    data, status = resp.read(), resp.status
                    headers = [(k, v) for k, v in resp.getheaders()
                               if k.lower() not in ("transfer-encoding", "connection",
                                                    "content-length")]
                    conn.close()
                with proxy.lock:
                    proxy.log.append((self.command, path, status))
                    if path.startswith("/api/tasks/"):
                        proxy.queries.append(urllib.parse.urlsplit(self.path).query)
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _any

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Proxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


# -- ingest: incremental and resumable ---------------------------------------------------------
def latest_rows(lake: Path, schema: str = "latest") -> dict[str, list[dict]]:
    """A lake's tables as sorted rows, without what differs by batch (batch, positions in the
    batch's file, child rows' project_id)."""
    from stream.lake import connect_lake

    con = connect_lake(lake)
    out = {}
    for table in TABLES:
        t = con.sql(f"SELECT * FROM {schema}.{table}").to_arrow_table()
        keep = [c for c in t.column_names
                if c not in ("batch", "position", "task_position", "file")
                and not (c == "project_id" and table != "tasks")]
        out[table] = sorted((comparable(r) for r in t.select(keep).to_pylist()), key=json.dumps)
    return out


def comparable(r: dict) -> dict:
    r["extra"] = {k: v for k, v in json.loads(r["extra"] or "{}").items() if k not in VOLATILE}
    return {k: (str(v) if not isinstance(v, (str, int, float, list, dict, type(None))) else v)
            for k, v in r.items()}


def pulled_rows(uri: str, out: Path) -> dict[str, list[dict]]:
    convert([uri], out)
    tables = read_tables(out)
    res = {}
    for table in TABLES:
        keep = [c for c in tables[table].column_names
                if c not in ("position", "task_position", "file")]
        res[table] = sorted((comparable(r) for r in tables[table].select(keep).to_pylist()),
                            key=json.dumps)
    return res


def ledger(lake: Path) -> list[dict]:
    return [json.loads(line) for line in (lake / "_lake" / "ledger.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_incremental_ingest(label_studio, api, token, tmp_path):
    """A second run brings exactly the tasks created or changed and the ids deleted;
    latest.* then equals a fresh full pull, and a third run has nothing to do. (Through a
    proxy that counts the requests: the project's URI names the proxy in every run.)"""
    from stream.lake import ingest

    project = api.project("incremental", CLASSES)
    api.import_tasks(project, class_tasks(30))
    lake = tmp_path / "lake"
    with Proxy(label_studio.url) as proxy:
        uri = label_studio.uri(project, base=proxy.url, page_size=7)
        first = ingest([uri], lake)
        assert [e["kind"] for e in first.ingested] == ["full"]
        assert first.ingested[0]["rows"]["tasks"] == 30

        ids = api.task_ids(project)
        api.import_tasks(project, class_tasks(5, start=100))  # 5 new tasks
        anns = {t: api.call("GET", f"/api/tasks/{t}/annotations/") for t in ids[:3]}
        api.call("PATCH", f"/api/annotations/{anns[ids[0]][0]['id']}/", {"result": [
            {"id": "x", "from_name": "sentiment", "to_name": "text", "type": "choices",
             "value": {"choices": ["neg"]}}]})  # an annotation changed
        api.call("POST", f"/api/tasks/{ids[1]}/annotations/", {"result": []})  # one added
        api.call("DELETE", f"/api/annotations/{anns[ids[2]][0]['id']}/")  # one deleted
        for t in ids[-2:]:
            api.call("DELETE", f"/api/tasks/{t}/")  # two tasks deleted
        mark = len(proxy.log)
        second = ingest([uri], lake)
        entry = second.ingested[0]
        assert entry["kind"] == "partial"
        assert entry["pull"]["tasks"] == 8 and entry["rows"]["tasks"] == 8
        assert entry["pull"]["deleted"] == [str(t) for t in ids[-2:]]
        requests = [p for m, p, s in proxy.log[mark:] if p.startswith("/api/tasks/")]
        assert len(requests) == 2  # one listing page, one page of the 8 changed tasks by id

        assert latest_rows(lake) == pulled_rows(uri, tmp_path / "fresh")
        third = ingest([uri], lake)
        assert third.nothing_to_do and "no task changed" in third.skipped[0]["reason"]
        history = latest_rows(lake, "main")
        assert len(history["tasks"]) == 38  # every version stays in the history

        api.call("DELETE", f"/api/tasks/{ids[3]}/")  # only a deletion: a batch without tasks
        fourth = ingest([uri], lake)
        assert fourth.ingested[0]["pull"]["deleted"] == [str(ids[3])]
        assert fourth.ingested[0]["rows"]["tasks"] == 0
        assert latest_rows(lake) == pulled_rows(uri, tmp_path / "fresh2")


@pytest.mark.slow
def test_killed_pull_resumes(label_studio, api, token, tmp_path, monkeypatch):
    """A pull killed after its first page resumes after that page, and commits the same
    batch as an uninterrupted run (through a request-counting proxy, in every run)."""
    project = api.project("resume", CLASSES)
    api.import_tasks(project, class_tasks(50))
    ids = api.task_ids(project)
    lake, whole = tmp_path / "lake", tmp_path / "whole"
    with Proxy(label_studio.url) as proxy:
        uri = label_studio.uri(project, base=proxy.url, page_size=10)
        monkeypatch.setenv("ANNOSTREAM_LAKE_KILL_AT", "pulled-page")
        killed = run_cli("ingest", uri, "--lake", str(lake))
        monkeypatch.delenv("ANNOSTREAM_LAKE_KILL_AT")
        assert killed.returncode == -9, killed.stderr.decode()
        assert not (lake / "_lake/ledger.jsonl").exists()
        mark = len(proxy.log)
        done = run_cli("ingest", uri, "--lake", str(lake))
        assert done.returncode == 0, done.stderr.decode()
        pages = [p for m, p, s in proxy.log[mark:] if p.startswith("/api/tasks/")]
        assert len(pages) == 5  # tasks 11-50: four full pages, then an empty one
        first = urllib.parse.parse_qs(proxy.queries[1])["query"][0]
        assert json.loads(first)["filters"]["items"][0]["value"] == ids[9]
        assert run_cli("ingest", uri, "--lake", str(whole)).returncode == 0
    (a,), (b,) = ledger(lake), ledger(whole)
    assert a["fingerprint"] == b["fingerprint"] and a["rows"] == b["rows"]
    assert latest_rows(lake, "main") == latest_rows(whole, "main")
