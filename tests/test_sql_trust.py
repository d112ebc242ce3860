"""The SQL surface's trust model (issue 11, docs/query.md): read-only by default, --write to
write, --safe for SQL from people who may not read the machine, `export --where` one
expression and nothing else."""
from __future__ import annotations

import json

import pytest
from helpers import SAMPLES, run_cli

from stream import convert

SECRET = "the machine's own file"


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trust")
    convert([SAMPLES / "labelstudio" / "classification.json"], folder / "out")
    (folder / "secret.txt").write_text(SECRET)
    return folder / "out"


def one_line_error(r, code: int = 1) -> str:
    err = r.stderr.decode()
    assert r.returncode == code and err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("sql, kind", [
    ("COPY (SELECT 1 AS a) TO '{tmp}/made.csv'", "COPY"),
    ("SELECT 1; COPY tasks TO '{tmp}/made.csv'", "COPY"),
    ("ATTACH '{tmp}/made.db'", "ATTACH"),
    ("INSTALL httpfs", "LOAD"),
    ("LOAD httpfs", "LOAD"),
    ("EXPORT DATABASE '{tmp}/made'", "EXPORT"),
])
def test_writing_statements_need_write(out, tmp_path, sql, kind):
    r = run_cli("query", str(out), sql.format(tmp=tmp_path))
    err = one_line_error(r)
    assert f"is {kind}" in err and "--write" in err
    assert list(tmp_path.iterdir()) == []  # refused before anything ran


def test_copy_with_write_writes_and_succeeds(out, tmp_path):
    target = tmp_path / "made.csv"
    r = run_cli("query", str(out), "--write",
                f"COPY (SELECT task_id FROM tasks ORDER BY task_id) TO '{target}'")
    assert r.returncode == 0, r.stderr.decode()
    ids = sorted(str(t["id"]) for t in json.loads(
        (SAMPLES / "labelstudio" / "classification.json").read_text()))
    assert target.read_text().split() == ["task_id", *ids]


def test_a_session_view_stays_allowed(out):
    r = run_cli("query", str(out), "--format", "json",
                "CREATE TEMP VIEW n AS SELECT count(*) AS c FROM tasks; SELECT c FROM n")
    assert r.returncode == 0 and json.loads(r.stdout) == [{"c": 3}]


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_text('{secret}')",
    "SELECT * FROM read_csv('{secret}')",
    "SELECT * FROM glob('{tmp}/*')",
    "SET enable_external_access = true",
    "SELECT * FROM read_parquet('{out}/../secret.txt')",
])
def test_safe_mode_reads_the_conversion_and_nothing_else(out, sql):
    secret = out.parent / "secret.txt"
    r = run_cli("query", str(out), "--safe", sql.format(secret=secret, tmp=out.parent, out=out))
    err = one_line_error(r)
    assert SECRET not in err and ("Permission Error" in err or "locked" in err), err
    r = run_cli("query", str(out), "--safe", "--format", "json",
                "SELECT count(*) AS n FROM regions")  # its own tables and views work
    assert r.returncode == 0 and json.loads(r.stdout)[0]["n"] > 0


@pytest.mark.parametrize("sql", ["ATTACH 'x.db'", "INSTALL httpfs", "LOAD httpfs",
                                 "COPY tasks TO 'x.csv'"])
def test_safe_mode_refuses_writes_even_with_write(out, sql):
    assert one_line_error(run_cli("query", str(out), "--safe", sql))
    r = run_cli("query", str(out), "--safe", "--write", sql)
    assert r.returncode == 2 and "drop --write" in r.stderr.decode()


def test_safe_mode_still_writes_the_output_file(out, tmp_path):
    target = tmp_path / "n.csv"
    r = run_cli("query", str(out), "--safe", "-o", str(target), "SELECT count(*) AS n FROM tasks")
    assert r.returncode == 0, r.stderr.decode()
    assert target.read_text().split() == ["n", "3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.csv"]


@pytest.mark.parametrize("where", [
    "true); COPY (SELECT 1) TO '{tmp}/pwn.csv'; SELECT (1",
    "true) UNION SELECT (1",
    "true) FROM tasks WHERE (true",
    "true /* unclosed",
    "1; SELECT 2",
    "exists (SELECT * FROM read_text('{secret}'))",
])
def test_export_where_is_one_expression_and_reads_nothing_else(out, tmp_path, where):
    secret = out.parent / "secret.txt"
    r = run_cli("export", str(out), "-o", str(tmp_path / "sel.json"),
                "--where", where.format(tmp=tmp_path, secret=secret))
    err = one_line_error(r)
    assert SECRET not in err
    assert list(tmp_path.iterdir()) == []


def test_export_where_still_takes_subqueries_and_comments(out, tmp_path):
    r = run_cli("export", str(out), "-o", str(tmp_path / "sel.json"), "-q", "--where",
                "task_id IN (SELECT task_id FROM tasks ORDER BY task_id LIMIT 2) -- two")
    assert r.returncode == 0, r.stderr.decode()
    assert len(json.loads((tmp_path / "sel.json").read_text())) == 2
