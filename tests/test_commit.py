"""The output folder switches from the old conversion to the new one in one step (issue 11).

The converter is killed (SIGKILL, at named failpoints) at every step of the commit, for a new
folder, --overwrite and --append; after each kill every reader, `annostream query` and the
README's plain DuckDB glob alike, sees the old conversion or the new one, never a mix, and
the rerun gives exactly the conversion a clean run gives. Output-side failures and the
leftovers of dead runs are covered too.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from helpers import ROOT, SAMPLES, leftovers, read_tables, run_cli

from stream.atomic import exchange
from stream.tables import TABLES
from stream.writer import STATE

OLD = SAMPLES / "labelstudio" / "classification.json"
NEW = SAMPLES / "labelstudio" / "image_regions.json"
STEPS = ["commit:start", "commit:linking", "commit:manifest", "symlink:made", "commit:links",
         "commit:switched", "commit:cleaned"]
FLAGS = {"new": [], "overwrite": ["--overwrite"], "append": ["--append"]}


def counts_by_query(out: Path) -> tuple | None:
    """Rows per table as `annostream query` sees them (None: no conversion there)."""
    sql = " UNION ALL ".join(f"SELECT {i} AS k, count(*) AS n FROM {t}"
                             for i, t in enumerate(TABLES))
    r = run_cli("query", str(out), "--format", "json", f"SELECT n FROM ({sql}) ORDER BY k")
    if r.returncode != 0:
        assert r.returncode in (1, 2) and "Traceback" not in r.stderr.decode(), r.stderr
        return None
    return tuple(row["n"] for row in json.loads(r.stdout))


def counts_by_glob(out: Path) -> tuple | None:
    """Rows per table through the README's plain DuckDB glob, `out/<table>/*.parquet`."""
    con = duckdb.connect()  # its own: a result left open would block the default one
    try:
        return tuple(con.execute(f"SELECT count(*) FROM '{out}/{t}/*.parquet'").fetchall()[0][0]
                     for t in TABLES)
    except duckdb.IOException:  # no files: no conversion yet
        return None
    finally:
        con.close()


def expected(tmp_path: Path, *inputs: Path, name: str) -> tuple:
    """Rows per table of a clean conversion of `inputs` (the reference)."""
    out = tmp_path / name
    r = run_cli("convert", *map(str, inputs), "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr.decode()
    t = read_tables(out)
    return tuple(t[name].num_rows for name in TABLES)


@pytest.fixture(scope="module")
def states(tmp_path_factory) -> dict[str, tuple]:
    tmp = tmp_path_factory.mktemp("ref")
    return {"old": expected(tmp, OLD, name="old"), "new": expected(tmp, NEW, name="new"),
            "both": expected(tmp, OLD, NEW, name="both")}


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("mode", list(FLAGS))
def test_a_kill_at_any_commit_step_leaves_old_or_new(tmp_path, states, mode, step):
    out = tmp_path / "out"
    if mode != "new":
        r = run_cli("convert", str(OLD), "-o", str(out), "-q")
        assert r.returncode == 0
    before = None if mode == "new" else states["old"]
    after = states["both"] if mode == "append" else states["new"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), ANNOSTREAM_FAILPOINT=step)
    killed = subprocess.run([sys.executable, "-m", "stream", "convert", str(NEW), "-o", str(out),
                             "-q", *FLAGS[mode]], env=env, capture_output=True)
    reached = killed.returncode == -signal.SIGKILL
    assert reached or (step == "commit:linking" and mode != "append"  # nothing to link
                       or step == "commit:links" and mode != "new"), killed.stderr  # made once
    seen = {counts_by_query(out), counts_by_glob(out)}
    assert seen <= {before, after}, (seen, before, after)
    if step in ("commit:switched", "commit:cleaned"):
        assert seen == {after}
    elif reached:
        assert seen == {before}
    if reached and step not in ("commit:switched", "commit:cleaned"):
        r = run_cli("convert", str(NEW), "-o", str(out), "-q", *FLAGS[mode])  # the rerun
        assert r.returncode == 0, r.stderr.decode()
    assert counts_by_query(out) == counts_by_glob(out) == after
    assert_no_leftovers(out)


def assert_no_leftovers(out: Path) -> None:
    """Nothing but the tables' links, the manifest's and the state folder, which holds the
    current generation, the one it replaced and the link: no hidden link or folder a killed
    run left."""
    assert sorted(p.name for p in out.iterdir()) == sorted([STATE, *TABLES, "_manifest.json"])
    gens = [p.name for p in (out / STATE).iterdir() if p.name.startswith("gen-")]
    assert len(gens) <= 2 and len(list((out / STATE).iterdir())) == len(gens) + 1, gens


def test_append_links_the_previous_parts_without_copying(tmp_path):
    out = tmp_path / "out"
    assert run_cli("convert", str(OLD), "-o", str(out), "-q").returncode == 0
    first = {p.name: p.stat().st_ino for p in (out / "tasks").glob("*.parquet")}
    assert run_cli("convert", str(NEW), "-o", str(out), "-q", "--append").returncode == 0
    second = {p.name: p.stat().st_ino for p in (out / "tasks").glob("*.parquet")}
    assert {k: second[k] for k in first} == first and len(second) == len(first) + 1


def test_a_live_runs_stage_is_never_cleaned(tmp_path):
    """A run blocked reading a FIFO holds the folder's lock: a second run is refused and the
    first one's generation is untouched; then the first one completes."""
    out = tmp_path / "out"
    fifo = tmp_path / "slow.json"
    os.mkfifo(fifo)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    live = subprocess.Popen([sys.executable, "-m", "stream", "convert", str(fifo), "-o",
                             str(out), "-q"], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (out / STATE).is_dir() or not any((out / STATE).iterdir()):
            assert time.monotonic() < deadline and live.poll() is None
            time.sleep(0.05)
        stage = next((out / STATE).iterdir())
        r = run_cli("convert", str(OLD), "-o", str(out), "-q")
        assert r.returncode == 1 and "another annostream run" in r.stderr.decode()
        assert stage.is_dir()
        with open(fifo, "wb") as f:
            f.write(OLD.read_bytes())
        assert live.wait(timeout=60) == 0
    finally:
        if live.poll() is None:
            live.kill()
            live.wait()
    assert read_tables(out)["tasks"].num_rows == len(json.loads(OLD.read_text()))


def test_dead_runs_generations_are_removed_by_the_next_run(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT), ANNOSTREAM_FAILPOINT="commit:start")
    for _ in range(3):  # each run removes the generation the one before it left
        r = subprocess.run([sys.executable, "-m", "stream", "convert", str(OLD), "-o", str(out)],
                           env=env, capture_output=True)
        assert r.returncode == -signal.SIGKILL
        assert len(list((out / STATE).iterdir())) == 1
    assert run_cli("convert", str(OLD), "-o", str(out), "-q").returncode == 0
    assert [p.name for p in (out / STATE).iterdir() if p.name.startswith("gen-")] == [
        os.readlink(out / STATE / "current")]


WORKER = """
import os, sys, time
from stream.executors import Processes

def work(i):
    os.write(1, f"{os.getpid()}\\n".encode())  # one write: two workers' prints could interleave
    time.sleep(30)
    open(sys.argv[1] + f".{i}", "w").close()

with Processes(2) as ex:
    list(ex.map(work, [0, 1]))
"""


def test_local_workers_die_with_their_parent(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    marker = tmp_path / "done"
    parent = subprocess.Popen([sys.executable, "-c", WORKER, str(marker)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers = [int(parent.stdout.readline()) for _ in range(2)]
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 60  # the kernel kills them at once; a loaded CI is slow
    while any(Path(f"/proc/{w}").exists() and "Z" not in _state(w) for w in workers):
        assert time.monotonic() < deadline, "a worker outlived its parent"
        time.sleep(0.05)
    assert not list(tmp_path.glob("done.*"))
    assert "Traceback" not in parent.stderr.read()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"


# -- output-side failures: one line, exit 3, the previous conversion intact ----------------------
def test_output_under_a_file(tmp_path):
    (tmp_path / "a_file").write_text("x")
    r = run_cli("convert", str(OLD), "-o", str(tmp_path / "a_file" / "sub"))
    assert r.returncode == 3
    err = r.stderr.decode()
    assert err.count("\n") == 1 and err.startswith(f"error: {tmp_path / 'a_file' / 'sub'}"), err


def _fsize_limit() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    import resource
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


@pytest.mark.parametrize("flag", ["--overwrite", "--append"])
def test_a_full_disk_keeps_the_previous_conversion(tmp_path, flag):
    out = tmp_path / "out"
    assert run_cli("convert", str(OLD), "-o", str(out), "-q").returncode == 0
    before = {p: (out / p).read_bytes() for p in leftovers(out) if (out / p).is_file()}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "stream", "convert", str(NEW),
                        str(SAMPLES / "labelstudio"), "-o", str(out), flag], env=env, capture_output=True,
                       preexec_fn=_fsize_limit)
    assert r.returncode == 3, r.stderr.decode()
    err = r.stderr.decode()
    assert err.count("\n") == 1 and "previous conversion is unchanged" in err, err
    assert {p: (out / p).read_bytes() for p in leftovers(out) if (out / p).is_file()} == before


def _immutable(path: Path, on: bool) -> None:
    """chattr +i (or -i) on a folder and everything in it but symlinks (which have no flags)."""
    paths = [str(p) for p in (path, *path.rglob("*")) if not p.is_symlink()]
    subprocess.run(["chattr", "+i" if on else "-i", *paths], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="chattr +i needs root (permissions do not "
                    "stop root); test_output_under_a_file covers a folder that cannot be made")
def test_a_read_only_output_folder(tmp_path):
    out = tmp_path / "out"
    assert run_cli("convert", str(OLD), "-o", str(out), "-q").returncode == 0
    _immutable(out, True)
    try:
        r = run_cli("convert", str(NEW), "-o", str(out), "--overwrite")
        parent = tmp_path / "ro"
        parent.mkdir()
        _immutable(parent, True)
        r2 = run_cli("convert", str(NEW), "-o", str(parent / "out"))
    finally:
        _immutable(out, False)
        if (tmp_path / "ro").exists():
            _immutable(tmp_path / "ro", False)
    for res in (r, r2):
        err = res.stderr.decode()
        assert res.returncode == 3 and err.count("\n") == 1 and "Traceback" not in err, err
    assert counts_by_query(out) == counts_by_glob(out) == tuple(
        read_tables(out)[t].num_rows for t in TABLES)
    assert read_tables(out)["tasks"].num_rows == len(json.loads(OLD.read_text()))


def test_a_failed_run_removes_the_folders_it_created(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"data": {}}, {"data": ')
    r = run_cli("convert", str(bad), "-o", str(tmp_path / "new" / "deeper" / "out"))
    assert r.returncode == 2
    assert not (tmp_path / "new").exists()


# -- a folder written before generations: moved into one, atomically ----------------------------
MIGRATE_STEPS = ["migrate:generation", "symlink:made", "migrate:current", "migrate:swapped",
                 "migrate:table", "commit:manifest", "commit:switched"]


def legacy_folder(tmp_path: Path, out: Path) -> None:
    """`out` as an annostream without generations wrote it: real table folders of part files
    and a real manifest (the files of a conversion of OLD, copied)."""
    ref = tmp_path / "ref-legacy"
    assert run_cli("convert", str(OLD), "-o", str(ref), "-q").returncode == 0
    out.mkdir()
    for name in (*TABLES, "_manifest.json"):
        src = (ref / name).resolve()
        if src.is_dir():
            shutil.copytree(src, out / name)
        else:
            shutil.copy(src, out / name)


def test_a_legacy_folder_reads_as_the_old_conversion(tmp_path, states):
    out = tmp_path / "out"
    legacy_folder(tmp_path, out)
    assert not (out / STATE).exists() and not (out / "tasks").is_symlink()
    assert counts_by_query(out) == counts_by_glob(out) == states["old"]


@pytest.mark.parametrize("step", MIGRATE_STEPS)
@pytest.mark.parametrize("mode", ["overwrite", "append"])
def test_a_kill_at_any_migration_step_leaves_old_or_new(tmp_path, states, mode, step):
    out = tmp_path / "out"
    legacy_folder(tmp_path, out)
    after = states["both"] if mode == "append" else states["new"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), ANNOSTREAM_FAILPOINT=step)
    killed = subprocess.run([sys.executable, "-m", "stream", "convert", str(NEW), "-o", str(out),
                             "-q", *FLAGS[mode]], env=env, capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    seen = {counts_by_query(out), counts_by_glob(out)}
    assert seen == ({after} if step == "commit:switched" else {states["old"]}), seen
    if step != "commit:switched":  # every table of the old conversion under its own name
        old = read_tables(out)
        assert {t: old[t].num_rows for t in TABLES} == dict(zip(TABLES, states["old"]))
    if step != "commit:switched":  # else the killed run had completed: nothing to rerun
        r = run_cli("convert", str(NEW), "-o", str(out), "-q", *FLAGS[mode])
        assert r.returncode == 0, r.stderr.decode()
    assert counts_by_query(out) == counts_by_glob(out) == after
    assert all((out / n).is_symlink() for n in (*TABLES, "_manifest.json"))
    assert_no_leftovers(out)


def test_exchange_swaps_a_folder_and_a_link(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    os.symlink("elsewhere", tmp_path / "l")
    assert exchange(tmp_path / "l", tmp_path / "d")  # ext4 and tmpfs can
    assert os.readlink(tmp_path / "d") == "elsewhere"
    assert (tmp_path / "l" / "f").read_text() == "x" and not (tmp_path / "l").is_symlink()
