"""`harness serve`'s app (reports.serve.make_app) through aiohttp's test client."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reports.serve import make_app
from reports.static import STATIC_DIR, plotly_name


@pytest.fixture()
def store(runs: dict[str, Path], tmp_path: Path) -> Path:
    store = tmp_path / "store"
    for name in ("invalid", "partial"):
        run = runs[name]
        shutil.copytree(run, store / run.parent.name / run.name)
    (tmp_path / "secret.txt").write_text("outside the store")
    return store


async def _client(store: Path) -> TestClient:
    client = TestClient(TestServer(make_app(store), host="127.0.0.1"))
    await client.start_server()
    return client


def _run_url(store: Path, name: str) -> str:
    run = next((store / f"raftkv-{name}").iterdir())
    return f"/raftkv-{name}/{run.name}"


async def test_index_and_reports_rendered_on_demand(store: Path) -> None:
    client = await _client(store)
    try:
        resp = await client.get("/")
        assert resp.status == 200 and resp.content_type == "text/html"
        text = await resp.text()
        assert "raftkv-invalid" in text and "raftkv-partial" in text
        url = _run_url(store, "invalid")
        resp = await client.get(url + "/report.html")
        assert resp.status == 200
        assert 'class="banner invalid"' in await resp.text()
        resp = await client.get(f"/{STATIC_DIR}/{plotly_name()}")
        assert resp.status == 200 and resp.content_type == "application/javascript"
        resp = await client.get(url, allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"] == url + "/"
        listing = await (await client.get(url + "/")).text()
        assert "history.jsonl" in listing and "download as zip" in listing
    finally:
        await client.close()


async def test_collected_files_are_served_as_plain_text(store: Path) -> None:
    run = next((store / "raftkv-invalid").iterdir())
    (run / "n1" / "evil.html").write_text("<script>alert(1)</script>")
    client = await _client(store)
    try:
        resp = await client.get(_run_url(store, "invalid") + "/n1/evil.html")
        assert resp.status == 200 and resp.content_type == "text/plain"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        resp = await client.get(_run_url(store, "invalid") + "/history.jsonl")
        assert resp.content_type == "text/plain"
    finally:
        await client.close()


async def test_preview_numbers_and_highlights_lines(store: Path) -> None:
    client = await _client(store)
    try:
        resp = await client.get("/preview" + _run_url(store, "invalid") + "/history.jsonl?line=7")
        assert resp.status == 200
        text = await resp.text()
        assert '<tr id="L7" class="hit">' in text and 'id="L1"' in text
        assert "&quot;index&quot;: 6" in text  # line 7 holds event 6, escaped
        resp = await client.get("/preview" + _run_url(store, "invalid") + "/history.jsonl?line=x")
        assert resp.status == 400
    finally:
        await client.close()


async def test_zip_of_a_run_carries_plotly_along(store: Path) -> None:
    client = await _client(store)
    try:
        url = _run_url(store, "partial")
        resp = await client.get("/zip" + url)
        assert resp.status == 200 and resp.content_type == "application/zip"
        zf = zipfile.ZipFile(io.BytesIO(await resp.read()))
        names = set(zf.namelist())
        base = url.lstrip("/")
        assert {f"{base}/history.jsonl", f"{base}/test.json", f"{base}/report.html",
                f"{STATIC_DIR}/{plotly_name()}"} <= names
        assert (await client.get("/zip/raftkv-partial")).status == 404  # not a run directory
    finally:
        await client.close()


@pytest.mark.parametrize("path", [
    "/../secret.txt", "/%2e%2e/secret.txt", "/raftkv-invalid/..%2f..%2fsecret.txt", "/preview/../secret.txt",
    "/preview/%2e%2e/secret.txt", "/preview/..%2fsecret.txt", "/zip/..%2f..", "/zip/%2e%2e",
    "/%2Fetc%2Fpasswd", "/preview/%2Fetc%2Fpasswd", "/link-out/secret.txt", "/preview/link-out/secret.txt",
])
async def test_traversal_is_refused(store: Path, path: str) -> None:
    """Sent as raw bytes: an HTTP client library would normalise the `..` away before the server saw it."""
    os.symlink(store.parent, store / "link-out")
    client = await _client(store)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        async with asyncio.timeout(10):
            reply = await reader.read()
        writer.close()
        status = int(reply.split(b" ", 2)[1])
        assert status in (400, 404), (path, reply[:200])
        assert b"outside the store" not in reply
    finally:
        await client.close()


def test_inside_refuses_every_way_out(store: Path) -> None:
    from aiohttp import web

    from reports.serve import _inside

    os.symlink(store.parent, store / "link-out")
    root = store.resolve()
    for rel in ("..", "../secret.txt", "a/../../secret.txt", "link-out", "link-out/secret.txt", "x\x00y"):
        with pytest.raises(web.HTTPNotFound):
            _inside(root, rel)
    assert _inside(root, "/etc/passwd") == root / "etc" / "passwd"  # a leading slash stays inside the store
    assert _inside(root, "") == root


@pytest.mark.parametrize("path", ["/" + "a" * 300, "/preview/" + "b" * 300, "/zip/" + "c" * 300,
                                  "/raftkv-invalid/" + "d" * 256 + "/x", "/x" + "/e" * 2100])
async def test_a_name_too_long_for_the_file_system_is_a_404_not_a_500(store: Path, path: str) -> None:
    client = await _client(store)
    try:
        resp = await client.get(path)
        assert resp.status == 404, (path[:40], resp.status, (await resp.text())[:300])
    finally:
        await client.close()


async def test_serve_command_serves_the_store_until_stopped(store: Path) -> None:
    """`python -m reports serve STORE --port P` (what `harness serve` runs): up, answering, then ended by pid."""
    import socket
    import subprocess
    import sys

    import aiohttp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen([sys.executable, "-m", "reports", "serve", str(store), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        async with aiohttp.ClientSession() as session, asyncio.timeout(60):
            while True:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/") as resp:
                        assert resp.status == 200
                        assert "raftkv-invalid" in await resp.text()
                        break
                except aiohttp.ClientConnectionError:
                    assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                    await asyncio.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        out = proc.stdout.read().decode() if proc.stdout else ""
    assert f"on http://127.0.0.1:{port}/" in out
