"""Every input shape of issue 2, through the real CLI and the API, gives the same rows.

The reference is a plain pretty-printed JSON array of real sample tasks; each shape below
holds the same tasks, so its tables must equal the reference's except for the columns that
describe the input itself (`file`, `container`, and `position` when each task is its own file).
"""
from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import zipfile
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest
from helpers import SAMPLES, read_tables, run_cli, staging_left

from stream import __version__, convert
from stream.tables import SCHEMA_VERSION, TABLES

LS = SAMPLES / "labelstudio"
BOM = b"\xef\xbb\xbf"


def sample_tasks() -> list[dict]:
    """Real sample tasks that carry their own ids (synthetic ids would name the input file)."""
    tasks = []
    for name in ("image_regions.json", "classification.json", "video_tracks.json", "ner_text.json"):
        tasks += json.loads((LS / name).read_text(encoding="utf-8"))
    return tasks


TASKS = sample_tasks()


def compact(tasks) -> bytes:
    return json.dumps(tasks, separators=(",", ":"), ensure_ascii=False).encode()


def pretty(tasks) -> bytes:
    return json.dumps(tasks, indent=2, ensure_ascii=False).encode()


def ndjson(tasks) -> bytes:
    return b"".join(json.dumps(t, ensure_ascii=False).encode() + b"\n" for t in tasks)


def zstd(data: bytes, path: Path) -> None:
    with pa.CompressedOutputStream(str(path), "zstd") as f:
        f.write(data)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def per_task_folder(folder: Path) -> Path:
    for i, t in enumerate(TASKS):
        write(folder / f"part{i // 4}" / f"task_{i:03d}.json", pretty(t))  # nested folders
    write(folder / ".DS_Store", b"\x00\x00\x00\x01Bud1")  # hidden: never read
    return folder


def per_task_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for i, t in enumerate(TASKS):
            z.writestr(f"export/task_{i:03d}.json", pretty(t))
        z.writestr("__MACOSX/export/._task_000.json", b"\x00\x05\x16\x07")
    return path


# name -> (make the input(s) under tmp, expected container, one task per file)
SHAPES = {
    "pretty": (lambda d: write(d / "tasks.json", pretty(TASKS)), "array", False),
    "compact": (lambda d: write(d / "tasks.json", compact(TASKS)), "array", False),
    "ndjson": (lambda d: write(d / "tasks.ndjson", ndjson(TASKS)), "object", False),
    "bom": (lambda d: write(d / "tasks.json", BOM + compact(TASKS)), "array", False),
    "gzip": (lambda d: write(d / "tasks.json.gz", gzip.compress(compact(TASKS))), "array", False),
    "bz2": (lambda d: write(d / "tasks.json.bz2", bz2.compress(pretty(TASKS))), "array", False),
    "xz": (lambda d: write(d / "tasks.json.xz", lzma.compress(compact(TASKS))), "array", False),
    "zstd": (lambda d: zstd(compact(TASKS), d / "tasks.json.zst") or d / "tasks.json.zst", "array", False),
    "gzip_ndjson_bom": (lambda d: write(d / "t.ndjson.gz", gzip.compress(BOM + ndjson(TASKS))), "object", False),
    # detection by content, not by name
    "gzip_named_json": (lambda d: write(d / "tasks.json", gzip.compress(compact(TASKS))), "array", False),
    "json_named_gz": (lambda d: write(d / "tasks.gz", pretty(TASKS)), "array", False),
    "zstd_no_extension": (lambda d: zstd(ndjson(TASKS), d / "export") or d / "export", "object", False),
    "zip_named_json": (lambda d: per_task_zip(d / "export.json"), "object", True),
    "folder": (lambda d: per_task_folder(d / "tasks"), "object", True),
    "zip": (lambda d: per_task_zip(d / "export.zip"), "object", True),
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    src = write(d / "reference.json", pretty(TASKS))
    convert([str(src)], d / "out")
    return read_tables(d / "out")


def without(t: pa.Table, *cols: str) -> pa.Table:
    return t.drop_columns([c for c in cols if c in t.column_names])


def assert_same_rows(got: dict, ref: dict, per_file: bool) -> None:
    for name in TABLES:  # the input names differ, and task positions when one task per file
        drop = ("file", "container", "position") if name == "tasks" and per_file else (
            ("file", "container") if name == "tasks" else
            ("file", "task_position") if per_file else ("file",))
        assert without(got[name], *drop).equals(without(ref[name], *drop)), name


def run(via: str, inputs: list, out: Path, *flags: str) -> dict:
    """Convert through the API or the real command; returns the tables written."""
    if via == "api":
        mode = "append" if "--append" in flags else "overwrite" if "--overwrite" in flags else "new"
        convert([str(i) for i in inputs], out, mode=mode)
    else:
        r = run_cli("convert", *map(str, inputs), "-o", str(out), *flags)
        assert r.returncode == 0, r.stderr.decode()
    return read_tables(out)


@pytest.mark.parametrize("via", ["api", "cli"])
@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_gives_the_same_rows(tmp_path, reference, shape, via):
    make, container, per_file = SHAPES[shape]
    src = make(tmp_path)
    got = run(via, [src], tmp_path / "out")
    assert_same_rows(got, reference, per_file)
    tasks = got["tasks"].to_pylist()
    assert {r["container"] for r in tasks} == {container}
    if per_file:
        assert {r["position"] for r in tasks} == {0}
        assert all(r["file"].startswith(str(src) + "/") and r["file"].endswith(".json") for r in tasks)
        assert len({r["file"] for r in tasks}) == len(TASKS)
    else:
        assert [r["position"] for r in tasks] == list(range(len(TASKS)))
        assert {r["file"] for r in tasks} == {str(src)}


def test_folder_files_are_read_in_sorted_path_order(tmp_path):
    folder = per_task_folder(tmp_path / "tasks")
    convert([str(folder)], tmp_path / "out")
    files = [r["file"] for r in read_tables(tmp_path / "out")["tasks"].to_pylist()]
    expected = sorted(str(p) for p in folder.rglob("*.json"))
    assert files == sorted(files) == [f.replace(os.sep, "/") for f in expected]


def test_single_task_object(tmp_path, reference):
    src = write(tmp_path / "one.json", pretty(TASKS[0]))
    got = run("api", [src], tmp_path / "out")
    assert got["tasks"].num_rows == 1
    assert got["tasks"]["container"].to_pylist() == ["object"]
    first = reference["tasks"].to_pylist()[0]
    row = got["tasks"].to_pylist()[0]
    assert {k: v for k, v in row.items() if k not in ("file", "container")} == \
        {k: v for k, v in first.items() if k not in ("file", "container")}
    n = sum(len(TASKS[0][k]) for k in ("annotations", "predictions", "drafts"))
    assert got["annotations"].num_rows == n


def test_stdin(tmp_path, reference):
    r = run_cli("convert", "-", "-o", str(tmp_path / "out"), "-q", input=gzip.compress(ndjson(TASKS)))
    assert r.returncode == 0, r.stderr.decode()
    got = read_tables(tmp_path / "out")
    assert_same_rows(got, reference, per_file=False)
    assert set(got["tasks"]["file"].to_pylist()) == {"<stdin>"}


@pytest.mark.parametrize("via", ["api", "cli"])
def test_several_inputs_in_one_run(tmp_path, reference, via):
    a = write(tmp_path / "a.json", pretty(TASKS[:2]))
    b = write(tmp_path / "b.json.gz", gzip.compress(ndjson(TASKS[2:4])))
    folder = tmp_path / "rest"
    for i, t in enumerate(TASKS[4:]):
        write(folder / f"{i:02d}.json", compact(t))
    got = run(via, [a, b, folder], tmp_path / "out")
    assert_same_rows(got, reference, per_file=True)  # same rows, in argument order
    files = got["tasks"]["file"].to_pylist()
    assert files[:4] == [str(a), str(a), str(b), str(b)]
    assert files[4:] == [f"{folder}/{i:02d}.json" for i in range(len(TASKS) - 4)]
    assert got["tasks"]["position"].to_pylist()[:4] == [0, 1, 0, 1]


# -- output modes -----------------------------------------------------------------------------
def listing(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("via", ["api", "cli"])
def test_append_adds_a_run(tmp_path, reference, via):
    a = write(tmp_path / "a.json", pretty(TASKS[:3]))
    b = write(tmp_path / "b.json", pretty(TASKS[3:]))
    out = tmp_path / "out"
    run(via, [a], out)
    got = run(via, [b], out, "--append")
    assert_same_rows(got, reference, per_file=True)  # the first run's parts sort first
    assert got["tasks"]["position"].to_pylist() == [0, 1, 2, *range(len(TASKS) - 3)]
    manifest = json.loads((out / "_manifest.json").read_text())
    assert [i["name"] for i in manifest["inputs"]] == [str(a), str(b)]
    assert len(manifest["runs"]) == 2
    assert manifest["rows"] == {t: got[t].num_rows for t in TABLES}
    assert manifest["rows"] == {t: sum(r["rows"][t] for r in manifest["runs"]) for t in TABLES}
    assert staging_left(out) == []


@pytest.mark.parametrize("via", ["api", "cli"])
def test_overwrite_replaces_the_previous_conversion(tmp_path, via):
    a = write(tmp_path / "a.json", pretty(TASKS[:3]))
    b = write(tmp_path / "b.json", pretty(TASKS[3:4]))
    out = tmp_path / "out"
    run(via, [a], out)
    got = run(via, [b], out, "--overwrite")
    assert got["tasks"]["task_id"].to_pylist() == [str(TASKS[3]["id"])]
    manifest = json.loads((out / "_manifest.json").read_text())
    assert [i["name"] for i in manifest["inputs"]] == [str(b)] and len(manifest["runs"]) == 1
    assert sorted(p.name for p in out.iterdir()) == sorted([*TABLES, "_manifest.json",
                                                            ".annostream"])
    assert staging_left(out) == []


def test_existing_output_is_refused_without_append_or_overwrite(tmp_path):
    a = write(tmp_path / "a.json", pretty(TASKS[:2]))
    out = tmp_path / "out"
    run("api", [a], out)
    before = listing(out)
    r = run_cli("convert", str(a), "-o", str(out))
    err = r.stderr.decode()
    assert r.returncode == 1 and "already holds a conversion" in err and "--overwrite" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert listing(out) == before
    with pytest.raises(Exception, match="already holds a conversion"):
        convert([str(a)], out)
    assert listing(out) == before


# -- manifest ---------------------------------------------------------------------------------
def test_manifest_contents(tmp_path):
    a = write(tmp_path / "a.json", pretty(TASKS[:3]))
    b = write(tmp_path / "b.json.xz", lzma.compress(ndjson(TASKS[3:])))
    folder = LS / "storage_tasks"
    out = tmp_path / "out"
    r = run_cli("convert", str(a), str(b), str(folder), "-o", str(out))
    assert r.returncode == 0, r.stderr.decode()
    assert "converted 3 input(s)" in r.stderr.decode()  # the summary line (no -q)
    m = json.loads((out / "_manifest.json").read_text())
    tables = read_tables(out)
    assert m["tool"] == "annostream" and m["version"] == __version__
    assert m["schema_version"] == SCHEMA_VERSION
    assert m["rows"] == {t: tables[t].num_rows for t in TABLES}
    assert m["skipped_tasks"] == 0
    folder_files = sorted(p for p in folder.rglob("*") if p.is_file())
    assert m["inputs"] == [
        {"name": str(a), "size": a.stat().st_size, "files": 1, "tasks": 3,
         "formats": ["labelstudio/array"]},
        {"name": str(b), "size": b.stat().st_size, "files": 1, "tasks": len(TASKS) - 3,
         "formats": ["labelstudio/object"]},
        {"name": str(folder), "size": sum(p.stat().st_size for p in folder_files),
         "files": len(folder_files), "tasks": len(folder_files), "formats": ["labelstudio/object"]},
    ]
    started = datetime.fromisoformat(m["started_at"].replace("Z", "+00:00"))
    finished = datetime.fromisoformat(m["finished_at"].replace("Z", "+00:00"))
    assert started <= finished and started.tzinfo is not None
    assert (finished - started).total_seconds() < 600
    run_ = m["runs"][-1]
    assert run_["rows"] == m["rows"] and run_["seconds"] >= 0 and run_["skipped_tasks"] == []


def test_folder_skips_files_that_are_not_json(tmp_path):
    folder = tmp_path / "tasks"
    write(folder / "a.json", pretty(TASKS[:2]))
    write(folder / "README.txt", b"exported from Label Studio 1.12\n")
    r = run_cli("convert", str(folder), "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr.decode()
    assert f"{folder}/README.txt: not JSON, skipped" in r.stderr.decode()
    m = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert m["inputs"][0]["files"] == 2 and m["inputs"][0]["tasks"] == 2
    assert m["inputs"][0]["formats"] == ["skipped (not JSON)", "labelstudio/array"]  # sorted paths


def test_the_demo_input_converts(tmp_path):
    """`make demo` converts all of sample_data/: every file there must convert."""
    out = tmp_path / "demo"
    r = run_cli("convert", str(SAMPLES), "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr.decode()
    demo = read_tables(out)
    convert([str(LS)], tmp_path / "ls")
    ls = read_tables(tmp_path / "ls")
    files = [f for f in demo["tasks"]["file"].to_pylist() if f.startswith(f"{LS}/")]
    assert files == ls["tasks"]["file"].to_pylist()


def test_quick_successive_appends_read_back_in_run_order(tmp_path):
    """Runs started within the same second must still sort in run order (part names)."""
    out = tmp_path / "out"
    names = []
    for i, task in enumerate(TASKS[:6]):
        src = write(tmp_path / f"t{i}.json", pretty([task]))
        convert([str(src)], out, mode="append" if i else "new")
        names.append(str(task["id"]))
    assert read_tables(out)["tasks"]["task_id"].to_pylist() == names
    runs = json.loads((out / "_manifest.json").read_text())["runs"]
    assert [r["inputs"][0]["name"] for r in runs] == [str(tmp_path / f"t{i}.json") for i in range(6)]


@pytest.mark.parametrize("shape", ["compact", "pretty", "ndjson", "folder", "zip", "gzip"])
def test_every_shape_gives_the_same_rows_with_two_workers(tmp_path, reference, shape):
    """Inputs big enough (for a tiny range_bytes) to be split or grouped across workers."""
    make, container, per_file = SHAPES[shape]
    src = make(tmp_path)
    out = tmp_path / "out"
    size = sum(p.stat().st_size for p in ([src] if src.is_file() else src.rglob("*")))
    convert([str(src)], out, workers=2, range_bytes=max(1, size // 6))
    got = read_tables(out)
    assert_same_rows(got, reference, per_file)
    files = got["tasks"]["file"].to_pylist()
    assert files == sorted(files) if per_file else set(files) == {str(src)}
    if not per_file:
        assert got["tasks"]["position"].to_pylist() == list(range(len(TASKS)))
    if shape in ("compact", "pretty", "folder"):  # these were really split: one part per job
        assert len(list((out / "tasks").glob("*.parquet"))) > 1
