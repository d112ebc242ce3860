"""Pulling a big project from a live Label Studio server vs the server's own export endpoints.

Starts a local Label Studio (the one `make test` installs in .venv-ls, SQLite, 127.0.0.1),
creates a project of --tasks tasks with one annotation of three results each (bulk import),
then measures on that same project, one after the other:

  pull      `annostream convert labelstudio+http://.../projects/ID` (task API, page by page)
  export    GET /api/projects/ID/export?exportType=JSON&download_all_tasks=true (the
            synchronous export the SDK's `as_json` and many scripts use)
  snapshot  POST /api/projects/ID/exports, then the download (`?via=export` of annostream)

For each: wall time, tasks/s, peak RSS of the client process (annostream, or the plain
download), peak RSS of the server process while it ran (sampled every 50 ms from /proc), and
whether it finished within the SDK's 60 s client time-out.

    .venv/bin/python scripts/bench_labelstudio_pull.py --tasks 20000
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from labelstudio_server import Api, start, stop  # noqa: E402

CONFIG = """<View><Text name="text" value="$text"/>
<Labels name="label" toName="text"><Label value="PER"/><Label value="ORG"/></Labels>
<Choices name="sentiment" toName="text"><Choice value="pos"/><Choice value="neg"/></Choices>
</View>"""
SDK_TIMEOUT = 60.0


def tasks(n: int, start_at: int) -> list[dict]:
    text = "Alice met Bob at Acme Corp. " * 8
    return [{"data": {"text": text, "i": i}, "annotations": [{"result": [
        {"id": f"a{i}", "from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": 0, "end": 5, "text": "Alice", "labels": ["PER"]}},
        {"id": f"b{i}", "from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": 17, "end": 26, "text": "Acme Corp", "labels": ["ORG"]}},
        {"id": f"c{i}", "from_name": "sentiment", "to_name": "text", "type": "choices",
         "value": {"choices": ["pos"]}}], "lead_time": 1.5}]}
        for i in range(start_at, start_at + n)]


class RssSampler:
    """Peak VmRSS of a process, sampled every 50 ms while active."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> RssSampler:
        self.peak = self._rss()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.thread.join()


def child(cmd: list[str], env: dict) -> tuple[float, int, int]:
    """Run `cmd`; (seconds, its peak RSS in bytes, exit code)."""
    with tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - t0
        code = os.waitstatus_to_exitcode(status)
        if code:
            err.seek(0)
            print(err.read(4096).decode(errors="replace"), file=sys.stderr)
    return seconds, usage.ru_maxrss * 1024, code


DOWNLOAD = """
import sys, urllib.request
req = urllib.request.Request(sys.argv[1], method=sys.argv[2], headers={"Authorization": "Token " + sys.argv[3]})
with urllib.request.urlopen(req, timeout=3600) as r, open(sys.argv[4], "wb") as out:
    while chunk := r.read(1 << 16):
        out.write(chunk)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=20_000)
    ap.add_argument("--page-size", type=int, default=500)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ls-"))
    t0 = time.monotonic()
    server, proc = start(work / "server")
    print(f"server up in {time.monotonic() - t0:.1f}s (pid {server.pid}, {server.url})",
          file=sys.stderr)
    try:
        api = Api(server)
        pid = api.project("bench", CONFIG)
        t0 = time.monotonic()
        for k in range(0, args.tasks, 5000):
            api.import_tasks(pid, tasks(min(5000, args.tasks - k), k))
        print(f"imported {args.tasks:,} tasks in {time.monotonic() - t0:.1f}s", file=sys.stderr)
        env = dict(os.environ, LABEL_STUDIO_API_KEY=server.token)
        rows = []
        uri = server.uri(pid, page_size=args.page_size)
        with RssSampler(server.pid) as s:
            sec, rss, code = child([sys.executable, "-m", "stream", "convert", uri, "-o",
                                    str(work / "pulled")], env)
        rows.append(("pull (annostream, task API)", sec, rss, s.peak, code))
        with RssSampler(server.pid) as s:
            sec, rss, code = child([sys.executable, "-c", DOWNLOAD,
                                    f"{server.url}/api/projects/{pid}/export?exportType=JSON"
                                    "&download_all_tasks=true", "GET", server.token,
                                    str(work / "export.json")], env)
        rows.append(("export endpoint (GET /export)", sec, rss, s.peak, code))
        with RssSampler(server.pid) as s:
            sec, rss, code = child([sys.executable, "-m", "stream", "convert",
                                    server.uri(pid, via="export"), "-o",
                                    str(work / "snapshot")], env)
        rows.append(("snapshot export + convert (?via=export)", sec, rss, s.peak, code))
        size = (work / "export.json").stat().st_size
        print(f"\nproject: {args.tasks:,} tasks, {size / 1e6:,.1f} MB as a JSON export; "
              f"page size {args.page_size}; label-studio {server_version(api)}")
        print(f"{'method':<42} {'seconds':>8} {'tasks/s':>8} {'client peak RSS':>16} "
              f"{'server peak RSS':>16} {'< 60 s':>7} {'ok':>3}")
        for name, sec, rss, srv, code in rows:
            print(f"{name:<42} {sec:>8.1f} {args.tasks / sec:>8,.0f} {rss / 2**20:>13,.0f} MB "
                  f"{srv / 2**20:>13,.0f} MB {'yes' if sec < SDK_TIMEOUT else 'no':>7} "
                  f"{'yes' if code == 0 else 'no':>3}")
    finally:
        stop(proc)


def server_version(api: Api) -> str:
    try:
        return api.call("GET", "/api/version").get("release", "?")
    except (OSError, ValueError, json.JSONDecodeError):
        return "?"


if __name__ == "__main__":
    main()
