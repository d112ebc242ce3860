"""`annostream query` / `tables` / `stream.connect`: views, output formats, errors, and the
README's example queries against the converted sample_data/labelstudio, with expected numbers
computed from the sample JSON (helpers of test_labelstudio.py)."""
from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import (
    LS,
    NER_FILE,
    TASK_FILES,
    ann_id_of,
    run_cli,
    source_annotations,
    source_tasks,
    task_id_of,
    ts,
)

import stream
from stream.cli import main
from stream.query import VIEWS, sql_type
from stream.tables import TABLES


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    """sample_data/labelstudio converted once, as the README does."""
    folder = tmp_path_factory.mktemp("query") / "out"
    stream.convert([LS], folder)
    return folder


def cli(*args) -> tuple[int, str, str]:
    """The `annostream` command in this process (stdout is not a terminal): exit code, out, err."""
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def shell(*args) -> tuple[int, str, str]:
    """The command as a user runs it: its own process, so stderr is exactly what they see."""
    p = run_cli(*map(str, args))
    return p.returncode, p.stdout.decode(), p.stderr.decode()


# -- the source side ---------------------------------------------------------------------------
def source_results() -> list[tuple[tuple, str, str, dict]]:
    """(task, kind, annotation_id, result) of every non-relation result in the samples, the
    task being (file, position) as ids repeat across files (video_tracks.json and
    video_interpolated.json share task 88001); the NER model file's spans are 'labels'
    results with no label (docs/formats.md C), one task per document."""
    out = []
    for name in TASK_FILES:
        for file, pos, obj in source_tasks(LS / name):
            tid = task_id_of(file, pos, obj)
            for kind, p, ann in source_annotations(obj):
                if isinstance(ann, dict):
                    aid = ann_id_of(tid, kind, p, ann)
                    out += [((str(file), pos), kind, aid, r) for r in ann.get("result") or []
                            if r["type"] != "relation"]
    spans, _ = json.loads((LS / NER_FILE).read_text(encoding="utf-8"))
    out += [((str(LS / NER_FILE), doc), "prediction", doc, {"type": "labels", "value": {}})
            for doc, s in spans.items() for _ in s]
    return out


def labels_of(r: dict) -> list[str]:
    v, t = r.get("value") or {}, r["type"]
    labels = v.get(t) if t.endswith("labels") and t in v else v.get("labels")
    return labels or []


# -- the README examples -------------------------------------------------------------------
def rows(out: Path, sql: str) -> list[dict]:
    return stream.connect(out).sql(sql).to_arrow_table().to_pylist()


def test_readme_result_types(out):
    got = rows(out, "SELECT type, count(*) AS n FROM results GROUP BY type ORDER BY n DESC, type")
    expected = Counter(r["type"] for *_, r in source_results())
    assert {g["type"]: g["n"] for g in got} == expected
    assert [g["n"] for g in got] == sorted(expected.values(), reverse=True)


def test_readme_labels_per_region(out):
    got = rows(out, "SELECT label, count(*) AS n FROM regions, unnest(labels) AS u(label) "
                    "GROUP BY label ORDER BY n DESC, label")
    assert {g["label"]: g["n"] for g in got} == Counter(
        lab for *_, r in source_results() for lab in labels_of(r))


def test_readme_region_count_and_boxes_with_comments(out):
    regions: dict[tuple, list[dict]] = {}
    for i, (task, kind, aid, r) in enumerate(source_results()):
        regions.setdefault((task, kind, aid, r.get("id", f"#{i}")), []).append(r)
    assert rows(out, "SELECT count(*) AS n FROM regions")[0]["n"] == len(regions)
    got = rows(out, "SELECT file, region_id, labels, texts, x, width FROM regions "
                    "WHERE texts IS NOT NULL AND x IS NOT NULL ORDER BY region_id, file")
    expected = []
    for ((file, _), _kind, _aid, rid), rs in regions.items():
        texts = [t for r in rs if isinstance(r["value"].get("text"), list) for t in r["value"]["text"]]
        shape = next((r["value"] for r in rs if "x" in r["value"]), None)
        if texts and shape:
            expected.append({"file": file, "region_id": rid,
                             "labels": [lab for r in rs for lab in labels_of(r)] or None,
                             "texts": texts, "x": shape["x"], "width": shape.get("width")})
    assert expected and got == sorted(expected, key=lambda e: (e["region_id"], e["file"]))


def test_readme_annotations_by_kind(out):
    got = rows(out, "SELECT kind, count(*) AS n, count(*) FILTER (WHERE was_cancelled) AS cancelled "
                    "FROM annotations GROUP BY kind ORDER BY kind")
    n, cancelled = Counter(), Counter()
    for name in TASK_FILES:
        for _, _, obj in source_tasks(LS / name):
            for kind, _, ann in source_annotations(obj):
                n[kind] += 1
                cancelled[kind] += isinstance(ann, dict) and bool(
                    ann.get("was_cancelled", ann.get("skipped")))
    spans, _ = json.loads((LS / NER_FILE).read_text(encoding="utf-8"))
    n["prediction"] += len(spans)
    assert got == [{"kind": k, "n": n[k], "cancelled": cancelled[k]} for k in sorted(n)]


def test_readme_latest_annotations(out):
    """One per task row: a task of each file, also where two files share its id."""
    best: dict[tuple, tuple] = {}
    for name in TASK_FILES:
        for file, pos, obj in source_tasks(LS / name):
            tid = task_id_of(file, pos, obj)
            task = (str(file), pos, tid)
            for kind, p, ann in source_annotations(obj):
                if kind != "annotation" or ann.get("was_cancelled", ann.get("skipped")):
                    continue
                when = [ts(ann[k]) if isinstance(ann.get(k), str) else
                        datetime.fromtimestamp(ann[k]).astimezone() if isinstance(ann.get(k), int)
                        else None for k in ("updated_at", "created_at")]
                key = (when[0] or when[1], when[1], p)
                if task not in best or _later(key, best[task][0]):
                    best[task] = (key, ann_id_of(tid, kind, p, ann))
    got = rows(out, "SELECT file, task_position, task_id, annotation_id FROM latest_annotations")
    assert {(g["file"], g["task_position"], g["task_id"], g["annotation_id"]) for g in got} == {
        (*t, a) for t, (_, a) in best.items()}
    assert len(got) == len(best)


def _later(a: tuple, b: tuple) -> bool:
    """Order of latest_annotations: newest updated (else created) first, NULLs last."""
    for x, y in zip(a, b):
        if x != y:
            return y is None or (x is not None and x > y)
    return False


def test_readme_frames_per_track(out):
    """video_tracks.json holds the keyframes of video_interpolated.json, which lists every
    visible frame (test_frames.py checks the two agree): each file's tracks have those frames."""
    got = rows(out, "SELECT file, region_id, count(*) AS visible FROM frames "
                    "WHERE kind = 'annotation' GROUP BY ALL")
    interpolated = json.loads((LS / "video_interpolated.json").read_text(encoding="utf-8"))
    expected = Counter(r["id"] for t in interpolated for a in t["annotations"] for r in a["result"]
                       if r["type"] == "videorectangle" for _ in r["value"]["sequence"])
    assert {(g["file"], g["region_id"]): g["visible"] for g in got} == {
        (str(LS / name), rid): n for name in ("video_tracks.json", "video_interpolated.json")
        for rid, n in expected.items()}


# -- views and the connection ----------------------------------------------------------------
def test_every_table_is_a_view_with_the_parquet_row_count(out):
    con = stream.connect(out)
    for name, table in TABLES.items():
        rel = con.sql(f"SELECT * FROM {name}")
        assert rel.columns == table.names
        n = sum(pq.ParquetFile(p).metadata.num_rows for p in (out / name).glob("*.parquet"))
        assert con.sql(f"SELECT count(*) FROM {name}").fetchall()[0][0] == n


def test_a_missing_table_is_an_empty_view_with_the_schema_columns(tmp_path):
    stream.convert([LS / "classification.json"], tmp_path / "out")
    for part in (tmp_path / "out" / "keyframes").glob("*.parquet"):
        part.unlink()
    (tmp_path / "out" / "relations").rename(tmp_path / "elsewhere")
    con = stream.connect(tmp_path / "out")
    for name in ("keyframes", "relations"):
        described = con.sql(f"DESCRIBE {name}").fetchall()
        assert [(d[0], d[1]) for d in described] == [(c.name, sql_type(c.type))
                                                     for c in TABLES[name].columns]
        assert con.sql(f"SELECT count(*) FROM {name}").fetchall()[0][0] == 0
    assert con.sql("SELECT count(*) FROM frames").fetchall()[0][0] == 0
    assert con.sql("SELECT count(*) FROM results").fetchall()[0][0] > 0


def test_connect_refuses_a_folder_that_is_not_a_conversion(tmp_path):
    with pytest.raises(stream.AnnostreamError, match="annostream convert"):
        stream.connect(tmp_path)
    with pytest.raises(stream.AnnostreamError, match="not a folder"):
        stream.connect(tmp_path / "missing")


def test_view_columns_are_documented():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "query.md").read_text()
    for view in VIEWS.values():
        section = doc.split(f"## `{view.name}`", 1)[1].split("\n## ", 1)[0]
        for column in view.columns:
            if column != "*":
                assert f"`{column}`" in section, f"{view.name}.{column} is not in docs/query.md"


# -- output formats ----------------------------------------------------------------------------
SQL = ("SELECT r.kind, r.annotation_id, r.position, r.type, r.x, r.readonly, r.labels, r.value, "
       "a.created_at, a.ground_truth FROM results r JOIN annotations a "
       "USING (source, kind, annotation_id) ORDER BY r.kind, r.annotation_id, r.position")


@pytest.fixture(scope="module")
def expected(out) -> list[dict]:
    return rows(out, SQL)


def from_text(cell: str, like, null: str = "") -> object:
    """A printed cell back as the value it stands for (the type taken from the expected value)."""
    if cell == null:
        return None
    if isinstance(like, bool):
        return {"true": True, "false": False}[cell]
    if isinstance(like, (int, float)):
        return type(like)(cell)
    if isinstance(like, list):
        return json.loads(cell)
    if isinstance(like, datetime):
        return datetime.fromisoformat(cell)
    return cell


def from_json(value, like):
    return datetime.fromisoformat(value) if isinstance(like, datetime) and value else value


def assert_text_rows(header: list[str], cells: list[list[str]], expected: list[dict], null=""):
    assert header == list(expected[0])
    assert len(cells) == len(expected)
    for row, e in zip(cells, expected):
        assert [from_text(c, v, null) for c, v in zip(row, e.values())] == list(e.values())


@pytest.mark.parametrize("fmt,delimiter", [("csv", ","), ("tsv", "\t")])
def test_csv_and_tsv(out, expected, fmt, delimiter):
    code, stdout, err = cli("query", out, "--format", fmt, SQL)
    assert code == 0, err
    header, *cells = list(csv.reader(io.StringIO(stdout), delimiter=delimiter))
    assert_text_rows(header, cells, expected)
    assert any("," in c for r in cells for c in r)  # the JSON `value` column needed quoting


def test_csv_is_the_default_off_a_terminal(out):
    assert shell("query", out, SQL)[1] == shell("query", out, "--format", "csv", SQL)[1]


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_json_and_ndjson(out, expected, fmt):
    code, stdout, err = cli("query", out, "--format", fmt, SQL)
    assert code == 0, err
    got = json.loads(stdout) if fmt == "json" else [json.loads(line) for line in stdout.splitlines()]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert list(g) == list(e)
        assert {k: from_json(g[k], v) for k, v in e.items()} == e


def test_empty_results(out):
    empty = SQL.replace("ORDER BY", "WHERE false ORDER BY")
    assert json.loads(cli("query", out, "--format", "json", empty)[1]) == []
    assert cli("query", out, "--format", "ndjson", empty)[1] == ""
    assert cli("query", out, "--format", "csv", empty)[1].splitlines() == [",".join(
        ["kind", "annotation_id", "position", "type", "x", "readonly", "labels", "value",
         "created_at", "ground_truth"])]


def test_markdown(out, expected):
    code, stdout, err = cli("query", out, "--format", "markdown", SQL)
    assert code == 0, err
    lines = stdout.splitlines()
    assert set(lines[1]) == set("|-: ")  # the header rule; numeric columns align right

    def split(line: str) -> list[str]:
        cells, cur, i = [], "", 1
        while i < len(line) - 1:
            if line[i] == "\\" and line[i + 1] == "|":
                cur, i = cur + "|", i + 2
                continue
            if line[i] == "|":
                cells.append(cur.strip())
                cur = ""
            else:
                cur += line[i]
            i += 1
        return cells + [cur.strip()]

    assert_text_rows(split(lines[0]), [[c.replace("<br>", "\n") for c in split(x)] for x in lines[2:]],
                     expected)


def test_table(out):
    code, stdout, err = cli("query", out, "--format", "table",
                            "SELECT type, count(*) AS n, NULL AS nothing FROM results "
                            "GROUP BY type ORDER BY n DESC, type")
    assert code == 0, err
    header, rule, *lines = stdout.splitlines()
    assert header.split() == ["type", "n", "nothing"] and set(rule.replace(" ", "")) == {"-"}
    got = {line.split()[0]: int(line.split()[1]) for line in lines}
    assert got == dict(Counter(r["type"] for *_, r in source_results()))
    assert all(line.split()[2] == "NULL" for line in lines)
    n_col = header.index(" n") + 1  # numbers are right-aligned under their header's end
    assert all(line[n_col].isdigit() for line in lines)


@pytest.mark.parametrize("ext", [".parquet", ".csv", ".tsv", ".json", ".ndjson"])
def test_output_file(out, expected, tmp_path, ext):
    path = tmp_path / f"subset{ext}"
    code, stdout, err = cli("query", out, "--output", path, SQL)
    assert code == 0, err
    assert stdout == "" and f"wrote {len(expected)} rows" in err
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    if ext == ".parquet":
        assert pq.read_table(path).to_pylist() == expected
    elif ext in (".csv", ".tsv"):
        header, *cells = list(csv.reader(path.open(newline=""), delimiter="," if ext == ".csv" else "\t"))
        assert_text_rows(header, cells, expected)
    else:
        text = path.read_text()
        got = json.loads(text) if ext == ".json" else [json.loads(x) for x in text.splitlines()]
        assert [{k: from_json(g[k], v) for k, v in e.items()} for g, e in zip(got, expected)] == expected
        assert len(got) == len(expected)


def test_output_refuses_an_unknown_extension_and_format_with_output(out, tmp_path):
    code, _, err = cli("query", out, "--output", tmp_path / "x.xlsx", "SELECT 1")
    assert code == 1 and "unknown output extension" in err and not list(tmp_path.iterdir())
    code, _, err = cli("query", out, "--output", tmp_path / "x.parquet",
                       "SELECT CAST(type AS INTEGER) FROM results")  # fails while writing
    assert code == 1 and "Conversion Error" in err and not list(tmp_path.iterdir())
    code, _, err = cli("query", out, "--output", tmp_path / "x.csv", "--format", "json", "SELECT 1")
    assert code == 2 and "--format" in err


def test_sql_file_runs_every_statement_and_prints_the_last(out, tmp_path):
    script = tmp_path / "report.sql"
    script.write_text("-- boxes per task\nCREATE TEMP VIEW boxes AS\n  SELECT * FROM regions WHERE x IS NOT NULL;\n"
                      "SELECT count(*) AS n FROM boxes;\n")
    code, stdout, err = cli("query", out, "--file", script, "--format", "ndjson")
    assert code == 0, err
    n = sum(1 for _ in rows(out, "SELECT * FROM regions WHERE x IS NOT NULL"))
    assert json.loads(stdout) == {"n": n} and n > 0
    script.write_text("CREATE TEMP VIEW a AS SELECT 1 AS one;\n\nSELECT one\n  FORM a;\n")
    code, stdout, err = cli("query", out, "--file", script)
    assert code == 1 and err.count("\n") == 1
    assert err.rstrip().endswith("(line 4, column 8)")  # counted in the whole script


def test_python_api(out):
    con = stream.connect(out)
    assert con.sql("SELECT count(*) FROM tasks").fetchall()[0][0] == sum(
        len(source_tasks(LS / n)) for n in TASK_FILES) + len(set().union(
            *json.loads((LS / NER_FILE).read_text(encoding="utf-8"))))
    assert {r[0] for r in con.sql("SHOW TABLES").fetchall()} >= set(TABLES) | set(VIEWS)


# -- errors ----------------------------------------------------------------------------------
def test_sql_error_is_one_line_with_its_position(out):
    code, stdout, err = shell("query", out, "SELECT type,\n       count(*)\nFORM results")
    assert code == 1 and stdout == ""
    assert err.count("\n") == 1 and err.startswith("error: Parser Error: ")
    assert err.rstrip().endswith("(line 3, column 6)")  # at 'results' after the misspelt FROM
    code, _, err = shell("query", out, "SELECT nosuch FROM results")
    assert code == 1 and err.count("\n") == 1 and "nosuch" in err


def test_a_runtime_error_is_one_line_too(out):
    code, _, err = shell("query", out, "SELECT CAST(type AS INTEGER) FROM results")
    assert code == 1 and err.count("\n") == 1 and "Conversion Error" in err


def test_debug_shows_the_traceback(out):
    code, _, err = shell("--debug", "query", out, "SELECT * FORM results")
    assert code != 0 and "Traceback" in err and "Parser Error" in err


def test_query_needs_sql_or_file(out):
    code, _, err = shell("query", out)
    assert code == 2 and "--file" in err


# -- tables ----------------------------------------------------------------------------------
def test_tables_lists_tables_and_views_with_counts(out):
    code, stdout, err = cli("tables", out, "--format", "json")
    assert code == 0, err
    got = {r["name"]: r for r in json.loads(stdout)}
    assert list(got) == list(TABLES) + list(VIEWS)
    for name, table in TABLES.items():
        n = sum(pq.ParquetFile(p).metadata.num_rows for p in (out / name).glob("*.parquet"))
        assert (got[name]["kind"], got[name]["rows"]) == ("table", n)
        assert got[name]["columns"] == ", ".join(table.names)
    assert got["regions"]["rows"] == rows(out, "SELECT count(*) AS n FROM regions")[0]["n"]
    assert got["frames"]["columns"] == ", ".join(VIEWS["frames"].columns)

    code, stdout, _ = cli("tables", out, "--format", "json", "--no-view-counts")
    assert {r["name"]: r["rows"] for r in json.loads(stdout)}["frames"] is None


def test_tables_columns_have_their_meaning(out):
    code, stdout, err = cli("tables", out, "--columns", "--format", "csv")
    assert code == 0, err
    got = list(csv.DictReader(io.StringIO(stdout)))
    meaning = {(r["name"], r["column"]): r["meaning"] for r in got}
    for t in TABLES.values():
        for c in t.columns:
            assert meaning[(t.name, c.name)] == c.doc
    assert all(meaning[("frames", c)] for c in VIEWS["frames"].columns)
    assert meaning[("latest_annotations", "was_cancelled")]
