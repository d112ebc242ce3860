"""A real Label Studio server for the tests: the `label-studio` package from PyPI in its own
virtual environment (`make test` builds .venv-ls), SQLite in a temporary folder, bound to
127.0.0.1 on a free port, analytics, Sentry and version checks off. Started once per session
(see conftest.py) and stopped by its process id.

`Api` is the tests' own small client (urllib, not the code under test) to create projects,
import tasks and download the server's own export.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 300.0  # a first start migrates a fresh SQLite database (about a minute)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str  # http://127.0.0.1:PORT
    token: str  # the admin's legacy API token
    pid: int
    log: Path

    def uri(self, project: int | str, base: str | None = None, **opts) -> str:
        query = "&".join(f"{k}={v}" for k, v in opts.items())
        return (f"labelstudio+{base or self.url}/projects/{project}"
                + (f"?{query}" if query else ""))


def executable() -> Path:
    exe = Path(os.environ.get("ANNOSTREAM_LABEL_STUDIO", ROOT / ".venv-ls/bin/label-studio"))
    if not exe.exists():
        raise RuntimeError(f"{exe} is missing: run `make test` (it builds .venv-ls with the "
                           "label-studio package)")
    return exe


def _env(data: Path) -> dict[str, str]:
    """The server's whole environment: nothing of ours leaks in, nothing phones home."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(data),
            "LABEL_STUDIO_BASE_DATA_DIR": str(data), "DJANGO_DB": "sqlite",
            "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "", "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false", "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true", "LOG_LEVEL": "WARNING"}


def _template() -> Path:
    """A migrated, empty database next to the server's venv, made once: a fresh one takes
    a minute of migrations, a copy of this one starts in seconds."""
    template = executable().parent.parent / "template"
    if not template.exists():
        tmp = template.with_name(f"template.{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        subprocess.run([str(executable()), "version", "--data-dir", str(tmp)], env=_env(tmp),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                       timeout=START_TIMEOUT)
        try:
            tmp.rename(template)
        except OSError:  # another session made it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
    return template


def start(data: Path) -> tuple[Server, subprocess.Popen]:
    """Start a server on a copy of the migrated template database in `data`; returns once
    /health answers."""
    shutil.copytree(_template(), data, dirs_exist_ok=True)
    port, token = free_port(), secrets.token_hex(20)
    env = dict(_env(data), LABEL_STUDIO_USERNAME="admin@example.com",
               LABEL_STUDIO_PASSWORD=secrets.token_hex(12), LABEL_STUDIO_USER_TOKEN=token)
    log = data / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(executable()), "start", "--no-browser", "--internal-host", "127.0.0.1",
             "--port", str(port), "--enable-legacy-api-token", "--data-dir", str(data)],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = Server(f"http://127.0.0.1:{port}", token, proc.pid, log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"label-studio exited ({proc.returncode}): see {log}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as r:
                if r.status == 200:
                    return server, proc
        except OSError:
            pass
        time.sleep(1)
    stop(proc)
    raise RuntimeError(f"label-studio did not answer on {server.url} within "
                       f"{START_TIMEOUT:.0f}s: see {log}")


def stop(proc: subprocess.Popen) -> None:
    """Stop the server by its own process id."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Api:
    """The tests' own calls to the server (independent of stream/labelstudio_api.py)."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def call(self, method: str, path: str, body=None, raw: bool = False, timeout: float = 600):
        req = urllib.request.Request(
            self.server.url + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Token {self.server.token}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            data = r.read()
        return data if raw else (json.loads(data) if data else None)

    def project(self, title: str, label_config: str) -> int:
        return self.call("POST", "/api/projects/", {"title": title,
                                                    "label_config": label_config})["id"]

    def import_tasks(self, project: int, tasks: list[dict]) -> dict:
        return self.call("POST", f"/api/projects/{project}/import", tasks)

    def task_ids(self, project: int) -> list[int]:
        page = self.call("GET", f"/api/tasks/?project={project}&page_size=100000")
        return sorted(t["id"] for t in page["tasks"])

    def export(self, project: int, dest: Path) -> Path:
        """The server's own snapshot export of the whole project (full drafts and
        predictions), downloaded to `dest`."""
        e = self.call("POST", f"/api/projects/{project}/exports", {
            "title": "test", "task_filter_options": {"only_with_annotations": False},
            "serialization_options": {"drafts": {"only_id": False},
                                      "predictions": {"only_id": False}}})
        while e["status"] not in ("completed", "failed"):
            time.sleep(0.5)
            e = self.call("GET", f"/api/projects/{project}/exports/{e['id']}")
        assert e["status"] == "completed", e
        dest.write_bytes(self.call(
            "GET", f"/api/projects/{project}/exports/{e['id']}/download?exportType=JSON",
            raw=True))
        return dest

    def personal_token(self) -> str:
        """A personal access token (a JWT refresh token) for the admin."""
        self.call("POST", "/api/jwt/settings", {"api_tokens_enabled": True,
                                                "legacy_api_tokens_enabled": True})
        try:
            return self.call("POST", "/api/token/", {})["token"]
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"cannot create a personal access token: {exc}") from exc
