"""`harness serve`: the store over HTTP on localhost: the index, the reports, file previews, zips of runs.

Routes (all paths relative to the store; every path is resolved and refused with 404 unless it stays inside the
store, so `..`, absolute paths, and symlinks that point out of the store cannot reach other files):
- `GET /`                        the campaign index, re-rendered when a run changed (reports.index)
- `GET /<test>/<run>/report.html` the report; rendered on demand when the run has none yet or it is older than
                                 the run's history or results
- `GET /<path>`                  a file of the store; a directory gives a listing. Only the store's index.html and
                                 reports are served as HTML; every other file as text/plain (or octet-stream), with
                                 `nosniff`, so a collected file can never run script in the page's origin
- `GET /preview/<path>?line=N`   a text file as a page with numbered, linkable lines (#L<N>), N highlighted; at most
                                 PREVIEW_LINES lines around N, with links to the neighbouring chunks
- `GET /zip/<test>/<run>`        the run directory as a zip (plus _static/plotly so the report opens offline once
                                 unzipped at the same relative place)

Rendering runs in a worker thread so the server keeps answering.
"""

from __future__ import annotations

import asyncio
import html
import mimetypes
import os
import tempfile
import zipfile
from pathlib import Path

from aiohttp import web

from reports.htmlsafe import esc, href
from reports.index import INDEX, find_runs, render_index
from reports.render import REPORT, render_run
from reports.rundir import HISTORY, RESULTS
from reports.static import STATIC_DIR

PREVIEW_LINES = 4000
PREVIEW_MAX_BYTES = 64 * 1024 * 1024
STORE_KEY: web.AppKey[Path] = web.AppKey("store", Path)
LOCK_KEY: web.AppKey[asyncio.Lock] = web.AppKey("render_lock", asyncio.Lock)
TEXT_TYPES = {".js": "application/javascript", ".css": "text/css", ".png": "image/png", ".svg": "text/plain",
              ".zip": "application/zip", ".gz": "application/gzip"}


NAME_MAX, PATH_MAX = 255, 4000


def _inside(store: Path, rel: str) -> Path:
    """The store path for a URL path, or HTTPNotFound if it would leave the store."""
    if "\x00" in rel:
        raise web.HTTPNotFound()
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts) or (parts and os.path.isabs(parts[0])):
        raise web.HTTPNotFound()
    # A name the file system cannot hold cannot name a file of the store; refused here, before a stat() fails
    # with ENAMETOOLONG (which 3.11's Path.is_dir lets through as a 500).
    if any(len(p.encode("utf-8", "surrogateescape")) > NAME_MAX for p in parts) or len(rel) > PATH_MAX:
        raise web.HTTPNotFound()
    path = (store / Path(*parts)) if parts else store
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as e:
        raise web.HTTPNotFound() from e
    if resolved != store and not resolved.is_relative_to(store):
        raise web.HTTPNotFound()
    return resolved


def _is_run_dir(store: Path, path: Path) -> bool:
    return path.is_dir() and path.parent.parent == store and path.parent.name != STATIC_DIR


def _stale(report: Path, run_dir: Path) -> bool:
    if not report.is_file():
        return True
    mtime = report.stat().st_mtime_ns
    return any((run_dir / f).is_file() and (run_dir / f).stat().st_mtime_ns > mtime for f in (HISTORY, RESULTS))


async def _index(request: web.Request) -> web.StreamResponse:
    store = request.app[STORE_KEY]
    async with request.app[LOCK_KEY]:
        path = await asyncio.to_thread(render_index, store)
    return _html_file(path)


def _html_file(path: Path) -> web.FileResponse:
    return web.FileResponse(path, headers={"Content-Type": "text/html; charset=utf-8",
                                           "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})


async def _file(request: web.Request) -> web.StreamResponse:
    store = request.app[STORE_KEY]
    rel = request.match_info["path"]
    path = _inside(store, rel)
    if path.name == REPORT and _is_run_dir(store, path.parent) and _stale(path, path.parent):
        async with request.app[LOCK_KEY]:
            await asyncio.to_thread(render_run, path.parent)
    if path.is_dir():
        if not request.path.endswith("/"):  # relative links in the listing need the slash
            raise web.HTTPFound(request.path + "/")
        return _listing(store, path)
    if not path.is_file():
        raise web.HTTPNotFound()
    if path.name in (REPORT, INDEX) and path.suffix == ".html":
        return _html_file(path)
    ctype = TEXT_TYPES.get(path.suffix)
    if ctype is None:
        guess = mimetypes.guess_type(path.name)[0] or ""
        ctype = "text/plain; charset=utf-8" if (guess.startswith("text/") or guess in ("", "application/json")
                                                or _looks_text(path)) else "application/octet-stream"
    return web.FileResponse(path, headers={"Content-Type": ctype, "X-Content-Type-Options": "nosniff",
                                           "Content-Security-Policy": "sandbox" if ctype.startswith("text/plain")
                                           else "default-src 'self'"})


def _looks_text(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(4096)
    return b"\x00" not in head


def _listing(store: Path, path: Path) -> web.Response:
    rel = path.relative_to(store).as_posix() if path != store else ""
    items = []
    if path != store:
        items.append('<li><a href="../">../</a></li>')
    for child in sorted(path.iterdir()):
        slash = "/" if child.is_dir() else ""
        items.append(f'<li><a href="{href(child.name)}{slash}">{esc(child.name)}{slash}</a></li>')
    extra = ""
    if _is_run_dir(store, path):
        extra = (f'<p><a href="{href(REPORT)}">report</a> · <a href="/zip/{href(rel)}">download as zip</a></p>')
    body = (f"<!DOCTYPE html><meta charset=utf-8><title>{esc(rel or 'store')}</title>"
            f"<body style='font:14px system-ui;margin:20px'><p><a href='/'>all runs</a></p><h1>/{esc(rel)}</h1>"
            f"{extra}<ul>{''.join(items)}</ul></body>")
    return web.Response(text=body, content_type="text/html", headers={"X-Content-Type-Options": "nosniff"})


async def _preview(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    rel = request.match_info["path"]
    path = _inside(store, rel)
    if not path.is_file():
        raise web.HTTPNotFound()
    try:
        line = max(1, int(request.query.get("line", "1")))
    except ValueError as e:
        raise web.HTTPBadRequest(text="line must be a number") from e
    start = max(1, line - PREVIEW_LINES // 2)
    end = start + PREVIEW_LINES
    rows = []
    total = 0
    with path.open("rb") as fh:
        read = 0
        for total, raw in enumerate(fh, start=1):  # noqa: B007 (total is the line count after the loop)
            read += len(raw)
            if start <= total < end:
                text = raw.rstrip(b"\r\n").decode("utf-8", errors="replace")
                cls = ' class="hit"' if total == line else ""
                rows.append(f'<tr id="L{total}"{cls}><td class="n"><a href="#L{total}">{total}</a></td>'
                            f"<td>{html.escape(text)}</td></tr>")
            if read > PREVIEW_MAX_BYTES and total >= end:
                break
    rel_posix = path.relative_to(store).as_posix()
    nav = []
    if start > 1:
        prev = max(1, start - PREVIEW_LINES // 2)
        nav.append(f'<a href="?line={prev}#L{prev}">earlier lines</a>')
    if total >= end:
        nav.append(f'<a href="?line={end + PREVIEW_LINES // 2}#L{end}">later lines</a>')
    body = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{esc(rel_posix)}</title><style>
body {{ margin: 0; font: 13px system-ui; }} header {{ padding: 8px 14px; background: #0f172a; color: #e2e8f0; }}
header a {{ color: #93c5fd; }} table {{ border-collapse: collapse; font: 12px ui-monospace, Menlo, Consolas, monospace; }}
td {{ padding: 0 8px; white-space: pre-wrap; word-break: break-all; vertical-align: top; }}
td.n {{ text-align: right; color: #94a3b8; user-select: none; }} td.n a {{ color: inherit; text-decoration: none; }}
tr.hit {{ background: #fef08a; }} tr:target {{ background: #fde68a; }}
</style></head><body><header><a href="/">all runs</a> · <b>{esc(rel_posix)}</b> · lines {start}–{min(end - 1, total)}
of {total if total < end else f"{total}+"} · <a href="/{href(rel_posix)}">raw</a> {" · ".join(nav)}</header>
<table>{"".join(rows)}</table></body></html>"""
    return web.Response(text=body, content_type="text/html", headers={"X-Content-Type-Options": "nosniff"})


def _write_zip(store: Path, run_dir: Path, out: Path) -> None:
    base = run_dir.relative_to(store)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for path in sorted(run_dir.rglob("*")):
            if path.is_file() and not path.is_symlink():
                zf.write(path, (base / path.relative_to(run_dir)).as_posix())
        static = store / STATIC_DIR
        if static.is_dir():
            for path in sorted(static.iterdir()):
                if path.is_file() and not path.name.startswith("."):
                    zf.write(path, f"{STATIC_DIR}/{path.name}")


async def _zip(request: web.Request) -> web.StreamResponse:
    store = request.app[STORE_KEY]
    path = _inside(store, request.match_info["path"])
    if not _is_run_dir(store, path):
        raise web.HTTPNotFound(text="not a run directory")
    if not (path / REPORT).is_file():
        async with request.app[LOCK_KEY]:
            await asyncio.to_thread(render_run, path)
    fd, tmp = tempfile.mkstemp(prefix="run-", suffix=".zip")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        await asyncio.to_thread(_write_zip, store, path, tmp_path)
        name = f"{path.parent.name}-{path.name}.zip"
        resp = web.StreamResponse(headers={"Content-Type": "application/zip",
                                           "Content-Disposition": f'attachment; filename="{name}"',
                                           "Content-Length": str(tmp_path.stat().st_size)})
        await resp.prepare(request)
        with tmp_path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                await resp.write(chunk)
        await resp.write_eof()
        return resp
    finally:
        tmp_path.unlink(missing_ok=True)


def make_app(store: Path) -> web.Application:
    """The aiohttp application serving `store` (see the module doc for the routes)."""
    store = Path(store).resolve()
    if not store.is_dir():
        raise FileNotFoundError(f"store {store} is not a directory")
    app = web.Application()
    app[STORE_KEY] = store
    app[LOCK_KEY] = asyncio.Lock()
    app.router.add_get("/", _index)
    app.router.add_get("/index.html", _index)
    app.router.add_get("/preview/{path:.+}", _preview)
    app.router.add_get("/zip/{path:.+}", _zip)
    app.router.add_get("/{path:.+}", _file)
    return app


def serve(store: Path, port: int = 8080, host: str = "127.0.0.1") -> None:
    """Serve the store until interrupted (Ctrl-C). Blocking. Renders the index once before listening."""
    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    render_index(store)
    runs = len(find_runs(store))
    print(f"serving {runs} run(s) of {store.resolve()} on http://{host}:{port}/ (Ctrl-C stops)", flush=True)
    web.run_app(make_app(store), host=host, port=port, print=None)
