"""Inputs are found lazily and cheaply: a folder is walked in sorted relative-path order
without being listed whole, a file is opened once (the zip check's handle is the one read),
and a run with many bad tasks lists only the first SKIPPED_LISTED of them in its manifest.
"""
from __future__ import annotations

import json
import os
import zipfile

import pytest

from stream import convert
from stream.formats import SKIPPED_LISTED
from stream.sources import iter_sources


def test_a_folder_is_walked_in_sorted_relative_path_order(tmp_path):
    """Names where '-', '.' and '/' sort against each other, nested folders, hidden entries
    and a zip among the files; the expected order is computed with os.walk and sort."""
    root = tmp_path / "in"
    names = ["a.json", "a/b.json", "a-b/c.json", "ab.json", "a/.hidden.json", ".h/x.json",
             "a/z/y.json", "a.b/c.json", "b/a-.json", "b/a/a.json", "b/a.json"]
    for n in names:
        (root / n).parent.mkdir(parents=True, exist_ok=True)
        (root / n).write_text('[{"data": {}}]')
    with zipfile.ZipFile(root / "b" / "z.zip", "w") as z:
        z.writestr("m.json", '[{"data": {}}]')
    expected = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        expected += [os.path.relpath(os.path.join(folder, f), root).replace(os.sep, "/")
                     for f in files if not f.startswith(".")]
    expected = [f"{root}/" + (n + "/m.json" if n.endswith(".zip") else n)
                for n in sorted(expected)]
    assert [s.name for s in iter_sources([str(root)])] == expected


def open_under(folder) -> list[str]:
    """The files under `folder` this process holds open (its fds' targets in /proc): not a
    count of every fd, which other tests' leftovers (a handle collected meanwhile, a thread of
    a client still running) change at any time."""
    fds = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed since it was listed
            continue
        if target.startswith(f"{folder}/"):
            fds.append(target)
    return fds


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads open files in /proc")
def test_listed_sources_hold_no_open_files_and_still_read(tmp_path):
    """A caller that lists the sources (the parallel path) does not keep a handle per file."""
    for i in range(40):
        (tmp_path / f"t{i:02d}.json").write_text(json.dumps([{"data": {"i": i}}]))
    sources = list(iter_sources([str(tmp_path)]))
    assert open_under(tmp_path) == []
    for i, src in enumerate(sources):
        with src.open() as f:
            assert len(open_under(tmp_path)) == 1
            assert json.loads(f.read()) == [{"data": {"i": i}}]
    assert open_under(tmp_path) == []


def test_a_file_is_opened_once_when_read_in_turn(tmp_path, monkeypatch):
    """The sequential converter reads each source before asking for the next one: the handle
    the zip check opened is the one it reads. Only opens of these files count (another
    test's thread may open files meanwhile)."""
    for i in range(5):
        (tmp_path / f"t{i}.json").write_text(json.dumps([{"data": {"i": i}}]))
    opened = []
    real_open = open

    def counting_open(file, *args, **kwargs):
        if str(file).startswith(f"{tmp_path}/"):
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    for src in iter_sources([str(tmp_path)]):
        with src.open() as f:
            f.read()
    assert sorted(opened) == sorted(str(p) for p in tmp_path.iterdir())


@pytest.mark.parametrize("workers", [1, 2])
def test_many_skipped_tasks_are_counted_but_listed_only_up_to_the_limit(tmp_path, workers):
    n_bad = SKIPPED_LISTED + 25
    tasks = [{"data": {"i": i}} if i % 2 else {"data": {"i": i}, "annotations": "not a list"}
             for i in range(2 * n_bad)]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    bad = [i for i, t in enumerate(tasks) if "annotations" in t]
    manifest = convert([path], tmp_path / "out", on_error="skip", workers=workers,
                       range_bytes=path.stat().st_size // 4).manifest
    run = manifest["runs"][-1]
    assert manifest["skipped_tasks"] == run["skipped_count"] == len(bad)
    assert [s["position"] for s in run["skipped_tasks"]] == bad[:SKIPPED_LISTED]
    assert run["inputs"][0]["tasks"] == len(tasks) - len(bad)
    assert run["inputs"][0]["files"] == 1 and run["inputs"][0]["size"] == path.stat().st_size
    assert json.loads((tmp_path / "out" / "_manifest.json").read_text()) == manifest
