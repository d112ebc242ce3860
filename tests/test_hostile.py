"""Hostile and broken inputs (issue 11): nesting depth, huge strings, big numbers, odd files.

Every case is built here from sample tasks with a known defect, so the file, task position and
byte the one-line error must name are known from the construction.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from decimal import Decimal
from pathlib import Path

import pyarrow.compute as pc
import pytest
from helpers import (
    ROOT,
    SAMPLES,
    TASKS,
    array,
    check_one_line,
    leftovers,
    read_tables,
    run_cli,
    task_start,
)

from stream import convert
from stream.depth import DIGITS, HIGHEST_DEPTH, MAX_DEPTH, Depth, Limited, TooLong, long_integer
from stream.elements import MAX_PENDING, ArrayItems
from stream.errors import InputError

# Runs argv as its only child; prints its exit code and peak RSS (Linux: KiB).
MEASURE = ("import resource, subprocess, sys; "
           "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE); "
           "sys.stderr.buffer.write(r.stderr); "
           "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def measured(*args: str) -> tuple[int, float, str]:
    """(exit code, peak RSS in MB, stderr) of `annostream args` in a fresh process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, "-m", "stream", *args],
                          capture_output=True, text=True, env=env, check=True)
    code, kib = done.stdout.split()
    return int(code), int(kib) / 1024, done.stderr


def nested(depth: int) -> str:
    """A JSON value nested `depth` levels deep (arrays)."""
    return "[" * depth + "]" * depth


# -- the nesting-depth limit -------------------------------------------------------------------
def test_depth_counter_agrees_with_a_byte_loop():
    """The vectorised counter against the plain definition, on random pieces cut anywhere."""
    import random
    rng = random.Random(7)

    def plain(data: bytes, limit: int) -> int:
        depth, in_string, escaped = 0, False, False
        for i, c in enumerate(data):
            if escaped:
                escaped = False
            elif c == 0x5C:
                escaped = True
            elif c == 0x22:
                in_string = not in_string
            elif not in_string and c in b"[{":
                depth += 1
                if depth > limit:
                    return i
            elif not in_string and c in b"]}":
                depth -= 1
        return -1

    for _ in range(2000):
        data = bytes(rng.choice(b'[]{}"\\a,') for _ in range(rng.randint(0, 80)))
        limit = rng.randint(1, 6)
        d, got, at = Depth(limit), -1, 0
        for cut in sorted(rng.sample(range(len(data) + 1), min(3, len(data) + 1))) + [len(data)]:
            hit = d.feed(data[at:cut])
            if hit >= 0:
                got = at + hit
                break
            at = cut
        assert got == plain(data, limit), data


@pytest.mark.parametrize("shape", ["array", "gzip", "object", "ndjson", "in_task"])
def test_input_deeper_than_the_limit_is_one_line_with_its_byte(tmp_path, shape):
    good = array(TASKS[:2])[1:-1]
    deep = nested(100_000)
    if shape == "array":
        data, task, byte = ("[" * 100_000).encode(), 0, MAX_DEPTH
    elif shape == "gzip":  # 133 bytes that used to cost 22 GB
        data, task, byte = gzip.compress(b"[" * 100_000), 0, MAX_DEPTH
    elif shape == "object":
        data = ('{"data": {"x": ' + deep + "}}").encode()
        task, byte = 0, data.index(b"[") + MAX_DEPTH - 2  # `{` `{` then arrays
    elif shape == "ndjson":
        data = array(TASKS[0]) + b"\n" + array(TASKS[1]) + b"\n" + ('{"data": ' + deep + "}").encode()
        task, byte = 2, data.index(b"[[[") + MAX_DEPTH - 1
    else:
        data = b"[" + good + b"," + ('{"data": {"x": ' + deep + "}}").encode() + b"]"
        task, byte = 2, data.index(b"[[[") + MAX_DEPTH - 3  # `[` `{` `{` then arrays
    path = tmp_path / "deep.json"
    path.write_bytes(data)
    code, peak, err = measured("convert", str(path), "-o", str(tmp_path / "out"), "-q")
    assert code == 2, err
    line = check_one_line(err.encode(), path, None, f"nested deeper than {MAX_DEPTH} levels")
    assert f": task {task} (near byte {byte})" in line, (line, byte)  # decompressed bytes
    assert peak < 400, f"peak RSS {peak:.0f} MB"
    assert leftovers(tmp_path / "out") == []


@pytest.mark.parametrize("workers", [1, 2])
def test_the_limit_is_the_same_when_an_array_is_split(tmp_path, workers):
    tasks = [dict(TASKS[i % len(TASKS)], id=i) for i in range(60)]
    data = array(tasks)
    bad = task_start(tasks, 45)
    deep = array(dict(tasks[45], meta={"x": json.loads(nested(600))}))
    data = data[:bad] + deep + data[bad + len(array(tasks[45])):]
    path = tmp_path / "big.json"
    path.write_bytes(data)
    with pytest.raises(InputError) as err:
        convert([path], tmp_path / "out", workers=workers, range_bytes=len(data) // 4)
    assert err.value.position == 45 and "nested deeper than 512" in err.value.reason
    assert err.value.offset == data.index(b"[" * 20) + MAX_DEPTH - 3  # [ { { then arrays


def test_the_limit_is_configurable_and_inclusive(tmp_path):
    """A value nested exactly to the limit converts and comes back; one level more does not;
    --max-depth and the API's max_depth raise it."""
    def task(depth: int) -> bytes:  # the array, the task, its data: 3 levels, then `depth`
        return ('[{"data": {"x": ' + nested(depth) + "}}]").encode()
    at_limit, over = tmp_path / "at.json", tmp_path / "over.json"
    at_limit.write_bytes(task(MAX_DEPTH - 3))
    over.write_bytes(task(MAX_DEPTH - 2))
    convert([at_limit], tmp_path / "a")
    assert json.loads(read_tables(tmp_path / "a")["tasks"]["data"][0].as_py()) == {
        "x": json.loads(nested(MAX_DEPTH - 3))}
    with pytest.raises(InputError, match="nested deeper than 512"):
        convert([over], tmp_path / "b")
    convert([over], tmp_path / "c", max_depth=MAX_DEPTH + 1)
    r = run_cli("convert", str(over), "-o", str(tmp_path / "d"), "-q", "--max-depth", "600")
    assert r.returncode == 0, r.stderr.decode()
    r = run_cli("export", str(tmp_path / "d"), "-o", str(tmp_path / "back.json"), "-q")
    assert r.returncode == 0 and json.loads((tmp_path / "back.json").read_bytes()) == \
        json.loads(over.read_bytes())
    r = run_cli("convert", str(over), "-o", str(tmp_path / "e"), "--max-depth", "100000")
    assert r.returncode == 2 and "--max-depth" in r.stderr.decode()
    with pytest.raises(ValueError):
        convert([over], tmp_path / "f", max_depth=0)


# -- strings of any size -----------------------------------------------------------------------
def big_string_task(size: int) -> bytes:
    return json.dumps({"id": 7, "data": {"text": "x" * size}}).encode()


@pytest.mark.parametrize("shape", ["array", "object"])
def test_a_string_beyond_the_pending_limit_stays_on_the_linear_reader(shape):
    """The fast reader used to hand an element over 64 MB (MAX_PENDING) to ijson, which rescans
    a string on every buffer it reads (quadratic: 120 MB took a minute). Now the element is
    buffered in place and parsed once: ijson never takes over."""
    size = MAX_PENDING + (4 << 20)
    body = big_string_task(size)
    data = b"[" + array(TASKS[0]) + b"," + body + b"]" if shape == "array" else body
    items = ArrayItems(io.BytesIO(data).read, array=shape == "array")
    values = list(items)
    assert values[-1]["data"]["text"] == "x" * size and items._ijson_base is None


@pytest.mark.slow
def test_peak_memory_of_a_huge_string_grows_linearly(tmp_path):
    """Twice the string, at most about twice the peak (a constant factor of the value, the
    Parquet writer's buffers included)."""
    peaks = []
    for size in (72 << 20, 144 << 20):
        path = tmp_path / f"s{size}.json"
        path.write_bytes(b"[" + big_string_task(size) + b"]")
        code, peak, err = measured("convert", str(path), "-o", str(tmp_path / f"o{size}"), "-q",
                                   "--workers", "1")
        assert code == 0, err
        peaks.append(peak)
        path.unlink()
    assert peaks[1] <= 2.3 * peaks[0], peaks


# -- numbers beyond 64 bits and beyond double range ---------------------------------------------
BIG = ('{"id": 123456789012345678901234567890, "data": {"x": 1e999, "y": -1E+400, '
       '"n": -98765432109876543210987654321, "f": 0.25}, "annotations": [{"id": 1e999, '
       '"result": [{"id": "r", "type": "rectangle", "from_name": "b", "to_name": "i", '
       '"value": {"x": 1e999, "y": 18446744073709551616, "width": 1, "height": 2}}]}]}')


@pytest.mark.parametrize("shape", ["array", "object", "ndjson", "odd_first"])
def test_big_numbers_convert_and_export_exactly(tmp_path, shape):
    if shape == "array":
        data = "[" + BIG + "]"
    elif shape == "object":
        data = BIG
    elif shape == "ndjson":
        data = json.dumps(TASKS[0]) + "\n" + BIG + "\n"
    else:  # the first element opens oddly: ijson reads the whole array
        data = '[{"data": {}}, ' + BIG + "]"
    path = tmp_path / "big.json"
    path.write_text(data)
    out = tmp_path / "out"
    r = run_cli("convert", str(path), "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr.decode()
    t = read_tables(out)
    row = t["tasks"].num_rows - 1
    assert t["tasks"]["task_id"][row].as_py() == "123456789012345678901234567890"
    data_text = t["tasks"]["data"][row].as_py()
    assert ":1e999" in data_text.lower() or ":1e+999" in data_text.lower()
    assert "-98765432109876543210987654321" in data_text
    res = t["results"].filter(pc.equal(t["results"]["region_id"], "r"))
    assert res["x"].to_pylist() == [None] and res["width"].to_pylist() == [1.0]
    assert "18446744073709551616" in res["value"][0].as_py()
    r = run_cli("export", str(out), "-o", str(tmp_path / "back.json"), "-q")
    assert r.returncode == 0, r.stderr.decode()
    back = (tmp_path / "back.json").read_text()
    original = [exact(line) for line in data.splitlines()] if shape == "ndjson" else exact(data)
    rebuilt = [exact(line) for line in back.splitlines()] if shape == "ndjson" else exact(back)
    assert rebuilt == original


def exact(text: str):
    """JSON with every number as a Decimal (the json module's own parsing, not ours)."""
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


# -- inputs that used to give a traceback ------------------------------------------------------
def test_invalid_utf8_in_the_first_bytes(tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(b'[{"\xff\xfe": 1, "data": {}}]')
    r = run_cli("convert", str(path), "-o", str(tmp_path / "out"))
    assert r.returncode == 2
    check_one_line(r.stderr, path, 0, "invalid UTF-8")
    assert leftovers(tmp_path / "out") == []


def test_zip_member_with_a_corrupt_local_header(tmp_path):
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w", zipfile.ZIP_STORED) as z:
        z.writestr("a.json", array(TASKS))
    data = bytearray(good.read_bytes())
    data[26] = 0xFF  # the local header's file name length: the member no longer opens
    path = tmp_path / "bad.zip"
    path.write_bytes(bytes(data))
    r = run_cli("convert", str(path), "-o", str(tmp_path / "out"))
    assert r.returncode == 2
    check_one_line(r.stderr, Path(f"{path}/a.json"), None, "corrupt zip member")
    assert leftovers(tmp_path / "out") == []


@pytest.mark.parametrize("kind", ["dangling", "loop"])
def test_bad_symlink_in_an_input_folder(tmp_path, kind):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.json").write_bytes(array(TASKS[:1]))
    link = folder / "b.json"
    link.symlink_to("nowhere.json" if kind == "dangling" else "b.json")
    r = run_cli("convert", str(folder), "-o", str(tmp_path / "out"))
    assert r.returncode == 2
    check_one_line(r.stderr, link, None, "cannot read")
    assert leftovers(tmp_path / "out") == []


def test_a_fifo_is_read_once_as_a_stream(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    data = array(TASKS)

    def write() -> None:
        with open(fifo, "wb") as f:  # one writer, once: a second open would wait forever
            f.write(data)
    t = threading.Thread(target=write, daemon=True)
    t.start()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "stream", "convert", str(fifo), "-o",
                        str(tmp_path / "out"), "-q", "--workers", "2"],
                       capture_output=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    assert read_tables(tmp_path / "out")["tasks"].num_rows == len(TASKS)


def test_a_fifo_inside_a_folder_is_bad_input_not_a_hang(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.json").write_bytes(array(TASKS[:1]))
    os.mkfifo(folder / "b.json")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "stream", "convert", str(folder), "-o",
                        str(tmp_path / "out")], capture_output=True, env=env, timeout=120)
    assert r.returncode == 2
    check_one_line(r.stderr, folder / "b.json", None, "not a regular file")


# -- input that used to be dropped silently, with exit 0 ---------------------------------------
def test_a_folder_or_zip_without_json_is_bad_input(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "README.txt").write_text("exports go here\n")
    z = tmp_path / "notes.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("README.txt", "exports go here\n")
    for given in (folder, z):
        r = run_cli("convert", str(given), "-o", str(tmp_path / "out"))
        assert r.returncode == 2
        err = r.stderr.decode()
        assert "Traceback" not in err and f"error: {given}: no JSON file found" in err, err
        assert leftovers(tmp_path / "out") == []


def test_two_zip_members_with_one_name(tmp_path):
    path = tmp_path / "dup.zip"
    with pytest.warns(UserWarning), zipfile.ZipFile(path, "w") as z:
        z.writestr("tasks.json", array(TASKS[:1]))
        z.writestr("tasks.json", array(TASKS[1:2]))
    r = run_cli("convert", str(path), "-o", str(tmp_path / "out"))
    assert r.returncode == 2
    check_one_line(r.stderr, path, None, "two zip members are named 'tasks.json'")


@pytest.mark.parametrize("key", ["exportId", "manifestVersion", "partitioning"])
@pytest.mark.parametrize("shape", ["array", "object"])
def test_a_task_starting_with_a_manifest_key_is_a_task(tmp_path, key, shape):
    task = {key: {"v": 1}, **TASKS[0]}
    path = tmp_path / "task.json"
    path.write_bytes(array([task] if shape == "array" else task))
    out = tmp_path / "out"
    convert([path], out)
    assert read_tables(out)["tasks"].num_rows == 1
    r = run_cli("export", str(out), "-o", str(tmp_path / "back.json"), "-q")
    assert r.returncode == 0
    back = json.loads((tmp_path / "back.json").read_bytes())
    assert back == ([task] if shape == "array" else task)


def test_the_sample_manifest_is_still_a_manifest(tmp_path):
    folder = ROOT / "sample_data" / "dataloop" / "v3_export"
    manifest = convert([folder], tmp_path / "out")
    assert "dataloop/manifest" in manifest.manifest["inputs"][0]["formats"]


@pytest.mark.parametrize("defect", ["truncated", "garbage_after", "deep"])
def test_a_corrupt_manifest_is_bad_input(tmp_path, defect):
    text = (ROOT / "sample_data" / "dataloop" / "v3_export" / "manifest.json").read_bytes()
    bad = {"truncated": text[: len(text) // 2], "garbage_after": text + b"}",
           "deep": text.replace(b'"filters": {}', b'"filters": ' + nested(1000).encode())}[defect]
    path = tmp_path / "manifest.json"
    path.write_bytes(bad)
    r = run_cli("convert", str(path), "-o", str(tmp_path / "out"))
    assert r.returncode == 2, r.stderr.decode()
    check_one_line(r.stderr, path, None, "corrupt export manifest")
    assert leftovers(tmp_path / "out") == []


def test_a_number_decimal_cannot_hold_is_one_line_not_a_traceback(tmp_path):
    """Found by scripts/fuzz.py: an exponent beyond Decimal's range made ijson (sniffing, and
    the ijson paths) raise decimal.InvalidOperation; an odd first element sends the array to
    ijson."""
    path = tmp_path / "odd.json"
    path.write_bytes(b'[{}, {"data": {"x": 99876543211e999098765432109876543212}}]')
    r = run_cli("convert", str(path), "-o", str(tmp_path / "out"))
    assert r.returncode == 2
    check_one_line(r.stderr, path, 1, "invalid JSON: a malformed number")


# -- integers too long to convert -----------------------------------------------------------------
def plain_long_integer(data: bytes) -> tuple[int, int]:
    """The definition, byte by byte: the start of the first run of more than DIGITS digits
    outside strings, not after `.`, `e`, `E`, `+` or `e-`, and not followed by `.`, `e`, `E`
    (or -1); and where a backslash outside strings stops every parser (or -1), after which
    any answer will do."""
    in_string, escaped, i = False, False, 0
    while i < len(data):
        c = data[i]
        if escaped:
            escaped = False
        elif in_string:
            escaped, in_string = c == 0x5C, c != 0x22
        elif c == 0x5C:
            return -1, i
        elif c == 0x22:
            in_string = True
        elif 0x30 <= c <= 0x39:
            end = i
            while end < len(data) and 0x30 <= data[end] <= 0x39:
                end += 1
            before, after = data[max(0, i - 2):i], data[end:end + 1]
            fraction = before[-1:] in (b".", b"e", b"E", b"+") or before in (b"e-", b"E-")
            if end - i > DIGITS and not fraction and after not in (b".", b"e", b"E"):
                return i, -1
            i = end
            continue
        i += 1
    return -1, -1


def test_integer_length_check_agrees_with_a_byte_loop():
    """The translate-and-search check against the plain definition, on random inputs fed in
    random pieces (through Limited, as ijson reads them)."""
    import random
    rng = random.Random(11)
    parts = [b'"', b"\\", b"1" * DIGITS, b"2" * (DIGITS + 1), b"3" * 5000, b"4", b".", b"e",
             b"-", b"+", b",", b" ", b"x"]
    for _ in range(400):
        data = b"".join(rng.choice(parts) for _ in range(rng.randint(0, 12)))
        cuts = sorted(rng.sample(range(len(data) + 1), min(4, len(data) + 1)))
        pieces = iter([data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])])
        lim, got = Limited(lambda n, p=pieces: next(p, b""), limit=HIGHEST_DEPTH), -1
        try:
            while lim.read(1 << 16):
                pass
        except TooLong as exc:
            got = exc.offset
        want, stop = plain_long_integer(data)
        if stop < 0:
            assert got == long_integer(data + b" ") == want, data[:40]
        else:
            assert got < 0 or got >= stop


@pytest.mark.parametrize("engine", ["core", "python"])
@pytest.mark.parametrize("shape", ["array", "object", "ndjson", "odd_first", "dataloop"])
def test_an_integer_too_long_to_convert_is_one_line(tmp_path, monkeypatch, engine, shape):
    """ijson's C backend crashed the process (SIGSEGV) on an integer of more than 4300 digits;
    msgspec and the core refuse one. Both engines give the same line; DIGITS digits convert."""
    monkeypatch.setenv("ANNOSTREAM_ENGINE", engine)
    long = "7" * (DIGITS + 1)
    task = '{"id": 1, "data": {"x": %s}}'
    data = {"array": f"[{task % 1}, {task % long}]", "object": task % long,
            "ndjson": f"{task % 1}\n{task % long}\n",
            "odd_first": f'[{{"data": {{}}}}, {task % long}]',
            "dataloop": '[{"id": "a", "filename": "/a.jpg", "annotations": [], "metadata": '
                        f'{{"n": {long}}}}}]'}[shape]
    path = tmp_path / "long.json"
    path.write_text(data)
    r = run_cli("convert", str(path), "-o", str(tmp_path / "out"))
    assert r.returncode == 2, r.stderr.decode()
    position = {"array": 1, "ndjson": 1, "odd_first": 1}.get(shape, 0)
    line = check_one_line(r.stderr, path, position, f"an integer of more than {DIGITS} digits")
    assert f"(near byte {data.index(long)})" in line, line
    assert leftovers(tmp_path / "out") == []
    path.write_text(data.replace(long, long[1:]))  # the longest integer taken: exactly back
    r = run_cli("convert", str(path), "-o", str(tmp_path / "ok"), "-q")
    assert r.returncode == 0, r.stderr.decode()
    r = run_cli("export", str(tmp_path / "ok"), "-o", str(tmp_path / "back.json"), "-q")
    assert r.returncode == 0, r.stderr.decode()
    lines = shape == "ndjson"
    back = (tmp_path / "back.json").read_text()
    want = path.read_text()
    assert ([exact(x) for x in back.splitlines()] if lines else exact(back)) == (
        [exact(x) for x in want.splitlines()] if lines else exact(want))


@pytest.mark.parametrize("engine", ["core", "python"])
def test_ids_that_are_not_canonical_ints_are_kept_as_text(tmp_path, monkeypatch, engine):
    """`"--5"` raised ValueError (a traceback); `"-0"`, `"007"`, a 5000-digit id and `"-12"`
    (a canonical int as text: its original is kept) all come back exactly."""
    monkeypatch.setenv("ANNOSTREAM_ENGINE", engine)
    ids = ["--5", "-0", "007", "9" * 5000, "-12", "+3", "1e3", "٣"]
    tasks = [{"id": i, "data": {}, "annotations": [{"id": i, "result": [
        {"id": i, "type": "choices", "from_name": "c", "to_name": "t",
         "value": {"choices": ["a"]}}]}]} for i in ids]
    path = tmp_path / "ids.json"
    path.write_text(json.dumps(tasks))
    out = tmp_path / "out"
    r = run_cli("convert", str(path), "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr.decode()
    assert read_tables(out)["tasks"]["task_id"].to_pylist() == ids
    r = run_cli("export", str(out), "-o", str(tmp_path / "back.json"), "-q")
    assert r.returncode == 0, r.stderr.decode()
    assert json.loads((tmp_path / "back.json").read_text()) == tasks


@pytest.mark.parametrize("engine", ["core", "python"])
@pytest.mark.parametrize("shape", ["array", "ndjson", "dataloop", "in_string"])
@pytest.mark.parametrize("byte", [b"\x0b", b"\x0c"])
def test_a_vertical_tab_or_form_feed_is_bad_input(tmp_path, monkeypatch, engine, shape, byte):
    """Found by scripts/fuzz.py (seed 2026, mutant 4411): yajl takes \\v and \\f for whitespace,
    so a Dataloop file with one between two elements converted though it is not JSON (the
    json module, msgspec and the core reject it)."""
    monkeypatch.setenv("ANNOSTREAM_ENGINE", engine)
    one = json.dumps(TASKS[0]).encode()
    data, task = {
        "array": (b"[" + one + b"," + byte + one + b"]", 1),
        "ndjson": (one + b"\n" + byte + one + b"\n", 1),
        "dataloop": ((SAMPLES / "dataloop" / "text_classification.json").read_bytes().replace(
            b"},\n    {", b"}," + byte + b"    {", 1), None),
        "in_string": (b"[" + one + b"," + one.replace(b'"data"', b'"da' + byte + b'ta"') + b"]",
                      1)}[shape]
    text = data.replace(byte, b" ").decode()  # JSON but for that byte
    for doc in text.splitlines() if shape == "ndjson" else [text]:
        json.loads(doc)
    path = tmp_path / "ctl.json"
    path.write_bytes(data)
    r = run_cli("convert", str(path), "-o", str(tmp_path / "out"))
    assert r.returncode == 2, r.stderr.decode()
    line = check_one_line(r.stderr, path, task, f"control character 0x{byte[0]:02x}")
    assert f"near byte {data.index(byte)})" in line, line
    assert leftovers(tmp_path / "out") == []
