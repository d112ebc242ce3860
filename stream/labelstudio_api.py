"""Pull projects straight from a Label Studio server: `labelstudio+http(s)://host[/prefix]/projects/ID`.

Label Studio Community builds its JSON export inside one HTTP request, which times out or runs
the server out of memory on big projects. Here the tasks are read through the paginated task
API instead (`GET /api/tasks?project=ID&fields=all`), one page at a time, keyset-paginated on
the task id (`id > last`, ordered by id: a task created or deleted during the pull shifts no
page). Each task is put into the shape the JSON export gives it (docs/labelstudio-pull.md) and
the pages are handed to the Label Studio reader as one JSON array stream, so a pulled project
converts exactly as its export file would. `?via=export` reads a snapshot export instead
(`POST /api/projects/ID/exports`, then a streamed download to a temporary file).

The token comes from LABEL_STUDIO_API_KEY (the SDK's variable): a legacy token is sent as
`Authorization: Token ...`; a personal access token (a JWT refresh token) is exchanged at
/api/token/refresh/ for an access token, and again when the server answers 401. The token is
never printed, logged, or part of a name we store.
"""
from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

import orjson
import urllib3

from ._version import __version__
from .errors import InputError
from .formats.common import dumps

log = logging.getLogger("annostream")

SCHEMES = ("labelstudio+http://", "labelstudio+https://")
CHUNK = 1 << 16

TOKEN_ENV = "LABEL_STUDIO_API_KEY"
PAGE_SIZE = 500
RETRIES = 5
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 300.0  # one page (or the export's creation) may take the server a while
RETRY_STATUS = (429, 500, 502, 503, 504)

# Key order of a task and an annotation in Label Studio's JSON export (1.x): a pulled task is
# written in this order, so its rows (list_keys, extra) match the export's; keys the export
# does not have follow in the API's order (they land in `extra`).
TASK_ORDER = ("id", "annotations", "drafts", "predictions", "data", "meta", "created_at",
              "updated_at", "allow_skip", "inner_id", "total_annotations",
              "cancelled_annotations", "total_predictions", "comment_count",
              "unresolved_comment_count", "last_comment_updated_at", "project", "updated_by",
              "comment_authors")
ANNOTATION_ORDER = ("id", "completed_by", "result", "was_cancelled", "ground_truth",
                    "created_at", "updated_at", "draft_created_at", "lead_time", "prediction",
                    "result_count", "unique_id", "import_id", "last_action", "bulk_created",
                    "task", "project", "updated_by", "parent_prediction", "parent_annotation",
                    "last_created_by")


def is_uri(arg: str) -> bool:
    return arg.startswith(SCHEMES)


@dataclass(frozen=True)
class Target:
    """A parsed `labelstudio+` URI: the server's base URL and which project(s)."""

    base: str  # http(s)://host[:port][/prefix], no credentials, no trailing slash
    project: int | None  # None: every project the token can see ('*')
    page_size: int = PAGE_SIZE
    via: str = "tasks"  # 'tasks' (the task API) | 'export' (a snapshot export)
    retries: int = RETRIES

    def uri(self, project: int | None = None) -> str:
        """The name of a project's input, as shown and stored (never holds the token)."""
        p = self.project if project is None else project
        return f"labelstudio+{self.base}/projects/{'*' if p is None else p}"


def parse(uri: str) -> Target:
    """Read a `labelstudio+http(s)://host[/prefix]/projects/(ID|*)[?page_size=N&via=export]`."""
    if not is_uri(uri):
        raise InputError(uri, "not a labelstudio+http(s):// URI")
    p = urllib.parse.urlsplit(uri[len("labelstudio+"):])
    if "@" in p.netloc:  # shown without it: it may be a token
        shown = f"labelstudio+{p.scheme}://{p.netloc.rsplit('@', 1)[-1]}{p.path}"
        raise InputError(shown, f"credentials do not belong in the URI: set {TOKEN_ENV}")
    prefix, sep, project = p.path.rstrip("/").rpartition("/projects/")
    base = f"{p.scheme}://{p.netloc}{prefix}"
    if not sep or not p.hostname or not (project == "*" or project.isdigit()):
        raise InputError(uri, "expected labelstudio+http(s)://HOST[/PREFIX]/projects/ID "
                              "(or /projects/*)")
    opts = dict(urllib.parse.parse_qsl(p.query, keep_blank_values=True))
    unknown = set(opts) - {"page_size", "via", "retries"}
    if unknown:
        raise InputError(uri, f"unknown option {sorted(unknown)[0]!r} (page_size, via, retries)")
    try:
        page_size = int(opts.get("page_size", PAGE_SIZE))
        retries = int(opts.get("retries", RETRIES))
    except ValueError:
        raise InputError(uri, "page_size and retries must be whole numbers") from None
    via = opts.get("via", "tasks")
    if not 1 <= page_size <= 100_000 or retries < 0 or via not in ("tasks", "export"):
        raise InputError(uri, "page_size must be 1 to 100000, retries >= 0, via tasks or export")
    return Target(base, None if project == "*" else int(project), page_size, via, retries)


def _is_jwt(token: str) -> bool:
    """A personal access token is a JWT (header.payload.signature); a legacy token is hex."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    try:
        text = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4))
        head = json.loads(text)  # bounded: a token's header
    except ValueError:
        return False
    return isinstance(head, dict) and "alg" in head


class Client:
    """HTTP calls to one server, with its token, time-outs and retries.

    urllib3 (not urllib.request): one kept-alive connection for all pages of a pull, separate
    connect and read time-outs, and a retry policy with exponential backoff that honours
    Retry-After on 429 and 503 (connection errors, 5xx and 429 are retried).
    """

    def __init__(self, target: Target, token: str | None = None) -> None:
        token = os.environ.get(TOKEN_ENV) if token is None else token
        if not token:
            raise InputError(target.uri(), f"set {TOKEN_ENV} to an access token of this server "
                                            "(Account & Settings in Label Studio)")
        self.target, self._token = target, token
        self._jwt = _is_jwt(token)
        self._access: str | None = None
        self.retry = urllib3.Retry(
            total=target.retries, connect=target.retries, read=target.retries,
            status=target.retries, other=0, backoff_factor=0.5, backoff_max=30,
            status_forcelist=RETRY_STATUS, allowed_methods=None, raise_on_status=False,
            respect_retry_after_header=True)
        self.pool = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT),
            headers={"User-Agent": f"annostream/{__version__}", "Accept": "application/json"})

    def _auth(self) -> str:
        if not self._jwt:
            return f"Token {self._token}"
        if self._access is None:
            r = self._send("POST", "/api/token/refresh/", None, {"refresh": self._token}, False,
                           auth=False)
            self._check(r, "/api/token/refresh/")
            access = self._json(r, "/api/token/refresh/").get("access")
            if not isinstance(access, str):
                raise InputError(self.target.uri(), "the server gave no access token for this "
                                                    f"personal access token ({TOKEN_ENV})")
            self._access = access
        return f"Bearer {self._access}"

    def _send(self, method: str, path: str, params: dict | None, body: Any, stream: bool,
              auth: bool = True) -> urllib3.BaseHTTPResponse:
        url = self.target.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        headers = {"Authorization": self._auth()} if auth else {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            return self.pool.request(method, url, headers=headers, retries=self.retry,
                                     body=None if body is None else json.dumps(body).encode(),
                                     preload_content=not stream, redirect=False)
        except urllib3.exceptions.MaxRetryError as exc:
            raise InputError(self.target.uri(), f"cannot reach {self._shown(path)} after "
                                                f"{self.target.retries} retries: "
                                                f"{self._reason(exc.reason)}") from None
        except urllib3.exceptions.HTTPError as exc:
            raise InputError(self.target.uri(),
                             f"{self._shown(path)}: {self._reason(exc)}") from None

    def request(self, method: str, path: str, params: dict | None = None, body: Any = None,
                stream: bool = False) -> urllib3.BaseHTTPResponse:
        """One API call; an error status is one InputError naming the URL (exit 2)."""
        r = self._send(method, path, params, body, stream)
        if r.status == 401 and self._jwt:  # the access token expired: refresh it once
            r.release_conn()
            self._access = None
            r = self._send(method, path, params, body, stream)
        self._check(r, path)
        return r

    def get_json(self, path: str, params: dict | None = None) -> Any:
        return self._json(self.request("GET", path, params), path)

    def _json(self, r: urllib3.BaseHTTPResponse, path: str) -> Any:
        data = r.data  # bounded: one page of page_size tasks, or a small API object
        try:
            return orjson.loads(data)  # bounded: see above
        except orjson.JSONDecodeError:
            try:  # ints beyond 64 bits, NaN: the json module reads them
                return json.loads(data)  # bounded: see above
            except ValueError as exc:
                raise InputError(self.target.uri(), f"{self._shown(path)} did not answer JSON "
                                                    f"({exc})") from None

    def _check(self, r: urllib3.BaseHTTPResponse, path: str) -> None:
        if r.status < 400:
            if r.status >= 300:
                raise InputError(self.target.uri(), f"{self._shown(path)} redirects "
                                 f"(HTTP {r.status}) to {r.headers.get('Location')}: use that "
                                 "URL (with https:// if it is one)")
            return
        what = {401: f"the server rejected the token ({TOKEN_ENV})",
                403: "the token's user may not read this",
                404: "not found: no such project, or no Label Studio API at this URL"}
        detail = what.get(r.status)
        if detail is None:
            detail = "server error" if r.status >= 500 else "request refused"
            text = r.data[:300].decode("utf-8", "replace")  # bounded: a short excerpt
            with contextlib.suppress(ValueError, AttributeError):
                text = str(json.loads(r.data).get("detail", text))  # bounded: an error body
            detail += f": {' '.join(text.split())[:200]}"
        r.release_conn()
        raise InputError(self.target.uri(), f"HTTP {r.status} from {self._shown(path)}: "
                                            f"{self._safe(detail)}")

    def _shown(self, path: str) -> str:
        return self.target.base + path

    def _reason(self, exc: BaseException | None) -> str:
        text = str(exc) if exc is not None else "no answer"
        if "Connection refused" in text:
            text = "connection refused (is the server running?)"
        elif "timed out" in text.lower():
            text = "timed out"
        return self._safe(text)

    def _safe(self, text: str) -> str:
        """Never echo a token, whatever a server or a library put in a message."""
        for secret in (self._token, self._access):
            if secret:
                text = text.replace(secret, "***")
        return text


# -- tasks as in the export ---------------------------------------------------------------------
def _ordered(obj: dict, order: tuple[str, ...]) -> dict:
    out = {k: obj[k] for k in order if k in obj}
    if len(out) < len(obj):
        out.update((k, v) for k, v in obj.items() if k not in out)
    return out


def export_shape(task: dict) -> dict:
    """A task of the task API as the JSON export writes it (docs/labelstudio-pull.md):
    export key order, `updated_by` as the user id rather than the Data Manager's
    [{"user_id": id}]; keys only the API gives stay (they land in `extra`), but for the
    annotations' request-relative `created_ago`."""
    t = _ordered(task, TASK_ORDER)
    by = t.get("updated_by")
    if type(by) is list and len(by) <= 1 and all(type(u) is dict and set(u) == {"user_id"}
                                                 for u in by):
        t["updated_by"] = by[0]["user_id"] if by else None
    anns = t.get("annotations")
    if type(anns) is list:
        t["annotations"] = [_annotation(a) if type(a) is dict else a for a in anns]
    return t


def _annotation(a: dict) -> dict:
    """An annotation in export key order, without `created_ago` ("3 minutes"): the API renders
    created_at relative to the request's time, which would make every pull of an unchanged
    annotation differ (the export has no such key for annotations)."""
    a = _ordered(a, ANNOTATION_ORDER)
    a.pop("created_ago", None)
    return a


# -- paging -------------------------------------------------------------------------------------
LISTING_PAGE = 5000  # (id, updated_at) pairs per request of a listing
IDS_PER_REQUEST = 200  # task ids named in one request's query (it travels in the URL)


def _query(after: int = 0, ids: list[int] | None = None) -> str:
    """Data Manager query, by id: tasks with id > after (keyset pagination), or these ids."""
    q: dict = {"ordering": ["tasks:id"]}
    if ids is not None:
        q["selectedItems"] = {"all": False, "included": ids}
    elif after:
        q["filters"] = {"conjunction": "and", "items": [
            {"filter": "filter:tasks:id", "operator": "greater", "type": "Number",
             "value": after}]}
    return json.dumps(q, separators=(",", ":"))


def _tasks(client: Client, project: int, size: int, query: str, **params: str) -> tuple[list, int]:
    """One page of the task API: its tasks and the number of tasks the query matches."""
    page = client.get_json("/api/tasks/", {"project": project, "page": 1, "page_size": size,
                                           "resolve_uri": "false", "query": query, **params})
    tasks = page.get("tasks") if isinstance(page, dict) else None
    if not isinstance(tasks, list):
        raise InputError(client.target.uri(project), "the task API answered without a "
                                                     "'tasks' list: not a Label Studio 1.x "
                                                     "server?")
    return tasks, page.get("total") or 0


def task_pages(client: Client, project: int, after: int = 0) -> Iterator[tuple[list, int]]:
    """Pages of export-shaped tasks with id > `after`, in id order, one request each, with the
    number of tasks left (for progress). Ends at a short page."""
    size = client.target.page_size
    while True:
        tasks, left = _tasks(client, project, size, _query(after), fields="all")
        yield [export_shape(t) for t in tasks], left
        if len(tasks) < size:
            return
        after = tasks[-1]["id"]


def tasks_by_id(client: Client, project: int, ids: list[int]) -> list[dict]:
    """The export-shaped tasks of these ids (at most IDS_PER_REQUEST), in id order; a task
    deleted meanwhile is missing."""
    tasks, _ = _tasks(client, project, len(ids), _query(ids=ids), fields="all")
    return [export_shape(t) for t in tasks]


def listing(client: Client, project: int) -> Iterator[list[dict]]:
    """Pages of {id, updated_at} of every task of the project, in id order: what changed
    and what is gone, at a fraction of the cost of the tasks."""
    after = 0
    while True:
        tasks, _ = _tasks(client, project, LISTING_PAGE, _query(after), include="id,updated_at")
        yield tasks
        if len(tasks) < LISTING_PAGE:
            return
        after = tasks[-1]["id"]


def page_bytes(tasks: list[dict]) -> bytes:
    """Tasks as the elements of a JSON array, comma-separated (no brackets)."""
    return b",".join(dumps(t).encode() for t in tasks)


class PullStream:
    """A project's tasks as one JSON array, read a page at a time (file-like `read`)."""

    def __init__(self, client: Client, project: int, progress: PullProgress | None = None
                 ) -> None:
        self.client, self.project, self.progress = client, project, progress
        self.total: int | None = None
        self._pages: Iterator[tuple[list, int]] | None = None
        self._buf = b"["
        self._first, self._done = True, False

    def read(self, n: int = -1) -> bytes:
        n = CHUNK if n is None or n < 0 else n
        while len(self._buf) < n and not self._done:
            self._fill()
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def _fill(self) -> None:
        if self._pages is None:
            # the project first: a wrong project is a clear 404, not an empty task list
            self.client.get_json(f"/api/projects/{self.project}/")
            self._pages = task_pages(self.client, self.project)
        page = next(self._pages, None)
        if page is None:
            self._buf += b"]"
            self._done = True
            return
        tasks, left = page
        if self.total is None:
            self.total = left
        if tasks:
            self._buf += (b"" if self._first else b",") + page_bytes(tasks)
            self._first = False
        if self.progress is not None:
            self.progress.add(len(tasks), self.total)

    def close(self) -> None:
        self._done = True
        if self.progress is not None:
            self.progress.close()


class PullProgress:
    """'tasks fetched of total, tasks/s' on stderr, redrawn per page (a terminal only)."""

    def __init__(self, name: str, stream: TextIO = sys.stderr) -> None:
        self.name, self.stream = name, stream
        self.enabled = stream.isatty()
        self.done, self.start = 0, time.monotonic()

    def add(self, n: int, total: int | None) -> None:
        self.done += n
        if self.enabled:
            rate = self.done / max(time.monotonic() - self.start, 1e-9)
            of = f" of {total:,}" if total else ""
            self.stream.write(f"\r{self.name}: {self.done:,}{of} tasks, {rate:,.0f} tasks/s ")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            self.stream.write("\r\033[K")
            self.stream.flush()


# -- the snapshot export --------------------------------------------------------------------------
EXPORT_OPTIONS = {"title": "annostream", "task_filter_options": {"only_with_annotations": False},
                  "serialization_options": {"drafts": {"only_id": False},
                                            "predictions": {"only_id": False}}}


def snapshot_export(client: Client, project: int, dest: BinaryIO, poll: float = 1.0) -> int:
    """Have the server build a JSON export of the project (with full drafts and predictions),
    stream it into `dest` and delete it on the server; returns the bytes written."""
    base = f"/api/projects/{project}/exports"
    client.get_json(f"/api/projects/{project}/")
    export = client._json(client.request("POST", base, body=EXPORT_OPTIONS), base)
    eid = export["id"]
    while export.get("status") not in ("completed", "failed"):
        time.sleep(poll)
        export = client.get_json(f"{base}/{eid}")
    if export["status"] == "failed":
        raise InputError(client.target.uri(project), f"the server's export {eid} failed")
    r = client.request("GET", f"{base}/{eid}/download", {"exportType": "JSON"}, stream=True)
    size = 0
    try:
        for chunk in r.stream(CHUNK):
            dest.write(chunk)
            size += len(chunk)
    except urllib3.exceptions.HTTPError as exc:
        raise InputError(client.target.uri(project), f"download of export {eid} broke off "
                                                     f"after {size:,} bytes: {exc}") from None
    finally:
        r.release_conn()
    try:
        client.request("DELETE", f"{base}/{eid}").release_conn()
    except InputError as exc:
        log.warning("%s: could not delete export %s on the server: %s",
                    client.target.uri(project), eid, exc.reason)
    return size


def _export_file(client: Client, project: int) -> BinaryIO:
    """The snapshot export downloaded to an unlinked temporary file, opened for reading."""
    f = tempfile.TemporaryFile(prefix="annostream-export-")
    try:
        snapshot_export(client, project, f)
        f.seek(0)
    except BaseException:
        f.close()
        raise
    return f


# -- sources ------------------------------------------------------------------------------------
class _Opener:
    """A project's Source.open: a fresh pull (or export download) per call."""

    def __init__(self, client: Client, project: int) -> None:
        self.client, self.project = client, project

    def __call__(self) -> BinaryIO:
        name = self.client.target.uri(self.project)
        if self.client.target.via == "export":
            return _export_file(self.client, self.project)
        return PullStream(self.client, self.project, PullProgress(name))  # type: ignore[return-value]


def project_ids(client: Client) -> Iterator[int]:
    """Every project the token can see, by id, a page of the project list at a time."""
    page = 1
    while True:
        listing = client.get_json("/api/projects/", {"page": page, "page_size": 100,
                                                     "ordering": "id"})
        for p in listing.get("results", []):
            yield p["id"]
        if not listing.get("next"):
            return
        page += 1


def projects(given: str) -> Iterator[tuple[str, Callable[[], BinaryIO]]]:
    """(name, open) of each project a URI names (one, or every project for '/projects/*'):
    stream/sources.py makes them Sources."""
    target = parse(given)
    client = Client(target)
    ids = [target.project] if target.project is not None else project_ids(client)
    for pid in ids:
        yield target.uri(pid), _Opener(client, pid)


def opener(name: str, given: str) -> Callable[[], BinaryIO]:
    """A project's open, rebuilt in another process (stream/parallel.py `Item`) from its name
    and the argument's options; the token comes from that process's environment."""
    project = parse(name).project
    if project is None:
        raise InputError(name, "expected one project's URI")
    return _Opener(Client(parse(given)), project)
