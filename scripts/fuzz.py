"""Seeded fuzzing of `convert` and `export`: mutated sample files, each run under a memory cap.

Every mutant must end in one of two ways: exit 0 with an exact round trip (`export` gives the
mutant's JSON back, numbers compared exactly), or exit 2 with one error line. Anything else
is a finding: a traceback, a run over the memory cap, a hang, a round-trip mismatch.

Each mutant runs in a child forked from this process (which has imported the converter
once), with RLIMIT_AS set to the process size at fork plus the cap, and the real CLI entry
point (`stream.cli.main`) for `convert --workers 1` and then `export`. tests/test_fuzz.py
runs this same loop for about a minute; run it for as long as you like:

    .venv/bin/python scripts/fuzz.py --mutants 10000 --seed 1
    .venv/bin/python scripts/fuzz.py --minutes 30 --keep findings/
"""
from __future__ import annotations

import argparse
import bz2
import contextlib
import gzip
import json
import lzma
import math
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
import zipfile
from collections import Counter
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stream.cli import main  # noqa: E402  (after the path: the scripts are not a package)

SEEDS = ROOT / "sample_data"
MAX_SEED_BYTES = 64 << 10
CAP_MB = 2048  # address space a run may add to what it has at fork (threads reserve much)
TIMEOUT = 60.0  # seconds for one mutant's convert and export
OUTCOMES = ("roundtrip", "bad_input", "traceback", "over_memory", "hang", "mismatch",
            "export_failed", "lenient", "other")
FINDINGS = frozenset(OUTCOMES) - {"roundtrip", "bad_input"}
EXIT = {0: "roundtrip", 2: "bad_input", 10: "mismatch", 11: "export_failed",
        12: "over_memory", 13: "lenient", 1: "traceback"}


def seeds() -> list[tuple[str, bytes]]:
    """(name, bytes) of every small sample file, zips and compressed ones included."""
    return [(p.name, p.read_bytes()) for p in sorted(SEEDS.rglob("*"))
            if p.is_file() and p.stat().st_size <= MAX_SEED_BYTES]


# -- mutations -----------------------------------------------------------------------------------
TOKENS = [b"[", b"]", b"{", b"}", b",", b":", b'"', b"\\", b"null", b"true", b"1e999",
          b"-1E+400", b"123456789012345678901234567890", b"18446744073709551616", b"0.1e-400",
          b'"\\ud800"', b'"\\u0000"', b"\xff", b"\xc3", b"\xef\xbb\xbf", b"NaN", b"Infinity",
          b'"data"', b'"annotations"', b'"result"', b'"exportId"', b'"filename"', b"\n",
          b'{"data": {}}', b"[" * 600, b"{\"a\":" * 600, b"-0", b"1.5", b'"id"']


def mutate(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    """One to four random edits: flips, inserted and deleted bytes or tokens, cuts, splices
    from another sample, repeated chunks, deep nesting, out-of-range numbers."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        n = len(b)
        at = rng.randrange(n + 1)
        op = rng.randrange(9)
        if op == 0 and n:
            b[min(at, n - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[at:at] = rng.choice(TOKENS)
        elif op == 2 and n:
            del b[at:at + rng.randint(1, 16)]
        elif op == 3:
            del b[at:]
        elif op == 4:
            other = rng.choice(others)
            start = rng.randrange(len(other) + 1)
            b[at:at] = other[start:start + rng.randint(1, 256)]
        elif op == 5 and n:
            end = min(n, at + rng.randint(1, 512))
            b[at:at] = bytes(b[at:end]) * rng.randint(1, 4)
        elif op == 6:  # a number token replaced by a huge one
            digits = [i for i, c in enumerate(b) if 0x30 <= c <= 0x39]
            if digits:
                i = rng.choice(digits)
                b[i:i + 1] = rng.choice([b"1e999", b"98765432109876543210987654321"])
        elif op == 7 and n:  # a structural byte swapped for another
            marks = [i for i, c in enumerate(b) if c in b"[]{},:\""]
            if marks:
                b[rng.choice(marks)] = rng.choice(b"[]{},:\"")
        else:
            b[at:at] = b"[" * rng.randint(100, 3000)
    return bytes(b)


# -- one run -----------------------------------------------------------------------------------
def _number(text: str) -> object:
    """What the converter promises for a number with a fraction or an exponent: the double
    nearest to it (as every Python JSON reader), exactly its value when beyond double range."""
    f = float(text)
    return f if math.isfinite(f) else Decimal(text)


def _exact(text: bytes | str) -> object:
    """JSON (or NDJSON) with integers exact and other numbers as `_number` says: the
    comparison of the round trip, by the json module, not by the converter's own parsing."""
    def load(s: str) -> object:
        return json.loads(s, parse_float=_number, parse_int=Decimal,
                          parse_constant=lambda c: ("const", c))
    s = text.decode("utf-8-sig") if isinstance(text, bytes) else text
    try:
        return load(s)
    except json.JSONDecodeError:
        return [load(line) for line in s.splitlines() if line.strip()]


def _documents(path: Path) -> list:
    """The JSON documents of an input as the json module reads them: a compressed file's
    content, a zip's JSON members (by the magic bytes, as the converter decides)."""
    data = path.read_bytes()
    if data.startswith(b"PK\x03\x04"):
        docs = []
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename.rsplit("/", 1)[-1]
                if info.is_dir() or name.startswith(".") or info.filename.startswith("__MACOSX/"):
                    continue
                with contextlib.suppress(ValueError):  # not JSON: the converter skips it too
                    docs.append(_exact(zf.read(info)))
        return docs
    for magic, open_ in ((b"\x1f\x8b", gzip.decompress), (b"BZh", bz2.decompress),
                         (b"\xfd7zXZ\x00", lzma.decompress)):
        if data.startswith(magic):
            data = open_(data)
    return [_exact(data)]


def _cli(argv: list[str]) -> int:
    try:
        main.main(argv, prog_name="annostream", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _child(path: Path, work: Path, cap: int) -> int:
    """The child's whole job: convert, export, compare; its exit code is the outcome."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        code = _cli(["convert", str(path), "-o", str(work / "out"), "-q", "--workers", "1"])
        if code != 0:
            return code
        summary = json.loads((work / "out" / "_manifest.json").read_text())
        (work / "engine").write_text(json.dumps(summary.get("engine", {})))
        if summary["rows"]["tasks"] == 0:  # a Dataloop manifest: nothing to give back
            return 0 if "dataloop/manifest" in summary["inputs"][0]["formats"] else 10
        code = _cli(["export", str(work / "out"), "-o", str(work / "back") + "/", "-q"])
        if code != 0:
            return 11
        got = [doc for f in sorted((work / "back").rglob("*")) if f.is_file()
               for doc in _documents(f)]  # export writes a .gz input back gzipped
        try:
            want = _documents(path)
        except ValueError:  # accepted, yet not JSON to the json module (yajl takes \v, \f
            return 13  # as whitespace): a finding of its own
        for doc in got:
            if doc not in want:
                return 10
            want.remove(doc)
        return 0 if not want else 10
    except MemoryError:
        return 12
    except BaseException:
        traceback.print_exc()
        return 1


def run_one(data: bytes, name: str, work: Path, cap_mb: int = CAP_MB,
            timeout: float = TIMEOUT) -> tuple[str, str]:
    """(outcome, stderr) of one input: converted and exported in a forked child (which
    leaves the manifest's tasks per engine in `work/engine` when it converted)."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    path = work / name
    path.write_bytes(data)
    err = work / "stderr"
    size = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    pid = os.fork()
    if pid == 0:  # the child: never returns
        fd = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 2)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        # the streams themselves too: under pytest they are capture objects, not fds 1 and 2
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        code = 1
        try:
            code = _child(path, work, size + (cap_mb << 20))
        finally:
            sys.stderr.flush()
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "hang", err.read_text(errors="replace") if err.exists() else ""
        time.sleep(0.005)
    text = err.read_text(errors="replace")
    if os.WIFSIGNALED(status):
        return "over_memory" if os.WTERMSIG(status) == signal.SIGKILL else "other", text
    outcome = EXIT.get(os.WEXITSTATUS(status), "other")
    if "Traceback" in text or "MemoryError" in text and outcome != "over_memory":
        outcome = "over_memory" if "MemoryError" in text else "traceback"
    elif outcome == "bad_input":
        errors = [line for line in text.splitlines() if line.startswith("error: ")]
        if len(errors) != 1 or len(text.splitlines()) - len(errors) > _log_lines(text):
            outcome = "other"
    return outcome, text


def _log_lines(text: str) -> int:
    """Lines of the converter's own log (skipped files): allowed next to the error line."""
    return sum(line.startswith("annostream: ") for line in text.splitlines())


def run(seed: int, mutants: int | None = None, seconds: float | None = None,
        cap_mb: int = CAP_MB, keep: Path | None = None, echo=None) -> Counter:
    """The fuzz loop: `mutants` mutants (or as many as fit in `seconds`) from `seed`;
    returns the count of each outcome. Findings are copied into `keep` when given."""
    rng = random.Random(seed)
    samples = seeds()
    others = [d for _, d in samples]
    counts: Counter = Counter()
    engines: Counter = Counter()  # tasks converted by each engine, over the accepted mutants
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="annostream-fuzz-") as tmp:
        work = Path(tmp) / "run"
        i = 0
        while (mutants is None or i < mutants) and (
                seconds is None or time.monotonic() - start < seconds):
            name, data = rng.choice(samples)
            mutant = mutate(rng, data, others)
            outcome, err = run_one(mutant, name, work, cap_mb)
            counts[outcome] += 1
            if (work / "engine").exists():
                engines.update(json.loads((work / "engine").read_text()))
            if outcome in FINDINGS:
                if keep is not None:
                    keep.mkdir(parents=True, exist_ok=True)
                    (keep / f"{i:06d}-{outcome}-{name}").write_bytes(mutant)
                    (keep / f"{i:06d}-{outcome}-{name}.stderr").write_text(err)
                if echo:
                    echo(f"mutant {i} of {name}: {outcome}: "
                         f"{(err.strip().splitlines() or [''])[-1][:200]}")
            i += 1
            if echo and i % 500 == 0:
                echo(f"{i} mutants, {time.monotonic() - start:.0f}s: {dict(counts)}")
    if echo:
        echo(f"tasks converted per engine: {dict(engines)}")
    return counts


def main_cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mutants", type=int, help="how many (default: until --minutes)")
    ap.add_argument("--minutes", type=float, help="how long (default: until --mutants)")
    ap.add_argument("--cap-mb", type=int, default=CAP_MB,
                    help="memory a run may add to the process size at fork")
    ap.add_argument("--keep", type=Path, help="copy findings (mutant and stderr) here")
    args = ap.parse_args()
    if args.mutants is None and args.minutes is None:
        ap.error("give --mutants or --minutes")
    t0 = time.monotonic()
    counts = run(args.seed, args.mutants, args.minutes and args.minutes * 60, args.cap_mb,
                 args.keep, echo=lambda line: print(line, flush=True))
    total = sum(counts.values())
    print(f"{total} mutants in {time.monotonic() - t0:.0f}s (seed {args.seed}, cap "
          f"{args.cap_mb} MB):")
    for o in OUTCOMES:
        print(f"  {o:<14} {counts.get(o, 0)}")
    sys.exit(1 if any(counts.get(o) for o in FINDINGS) else 0)


if __name__ == "__main__":
    main_cli()
