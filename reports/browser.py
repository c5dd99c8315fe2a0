"""A small headless-Chromium driver over the DevTools protocol, for testing and looking at reports.

`async with launch() as browser: page = await browser.page(); await page.goto(url)`, then `page.evaluate(js)`,
`page.wait_for(js)` (polls a condition with a deadline), `page.screenshot(path)` and `page.errors()` (uncaught
exceptions, console.error calls and error log entries, in order). Uses Debian's /usr/bin/chromium (or
$CHROMIUM) with a throw-away profile; no network beyond the page's own (loopback or file://) requests is made, and
the browser is ended by its pid when the block exits.

Command line (for a person or the lead): `python -m reports.browser URL_OR_FILE OUT.png [WIDTH]`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
         "--remote-debugging-port=0")


class BrowserError(RuntimeError):
    """Chromium could not be started or answered a command with an error."""


def find_chromium() -> str | None:
    """The Chromium binary to use: $CHROMIUM, else chromium or chromium-browser on PATH."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One tab, driven over its own DevTools websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []

    async def _read(self) -> None:
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data:
                fut = self._waiting.pop(data["id"], None)
                if fut is not None and not fut.done():
                    fut.set_result(data)
            else:
                self.events.append(data)
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(BrowserError("the DevTools connection closed"))

    async def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30.0) -> dict[str, Any]:
        i = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[i] = fut
        await self._ws.send_str(json.dumps({"id": i, "method": method, "params": params or {}}))
        async with asyncio.timeout(timeout):
            reply = await fut
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    async def goto(self, url: str, width: int = 1400, height: int = 1000, timeout: float = 30.0) -> None:
        """Open url and wait for its load event."""
        await self.send("Page.enable")
        await self.send("Runtime.enable")
        await self.send("Log.enable")
        await self.send("Emulation.setDeviceMetricsOverride",
                        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        seen = len(self.events)
        await self.send("Page.navigate", {"url": url})
        async with asyncio.timeout(timeout):
            while not any(e.get("method") == "Page.loadEventFired" for e in self.events[seen:]):
                await asyncio.sleep(0.05)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited); raises BrowserError if it throws."""
        result = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                      "awaitPromise": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {result['exceptionDetails'].get('text')} "
                               f"{result['exceptionDetails'].get('exception', {}).get('description', '')}")
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """Poll a JavaScript expression until it is truthy; return its value. TimeoutError after `timeout` s."""
        async with asyncio.timeout(timeout):
            while True:
                value = await self.evaluate(expression)
                if value:
                    return value
                await asyncio.sleep(0.1)

    async def screenshot(self, path: Path, full_page: bool = True, max_height: int = 16000) -> Path:
        """Save a PNG of the page: the whole scroll height when full_page (up to max_height px), taken by making
        the viewport that tall for the shot (captureBeyondViewport would make responsive plots re-layout
        half-way), then restoring it."""
        params: dict[str, Any] = {"format": "png"}
        restore = None
        if full_page:
            size = await self.evaluate("({w: innerWidth, h: innerHeight, H: document.documentElement.scrollHeight})")
            restore = size
            height = min(int(size["H"]), max_height)
            await self.send("Emulation.setDeviceMetricsOverride",
                            {"width": size["w"], "height": height, "deviceScaleFactor": 1, "mobile": False})
            await self.evaluate("new Promise(r => setTimeout(() => requestAnimationFrame(() => "
                                "requestAnimationFrame(r)), 300))")
        shot = await self.send("Page.captureScreenshot", params, timeout=60.0)
        if restore is not None:
            await self.send("Emulation.setDeviceMetricsOverride",
                            {"width": restore["w"], "height": restore["h"], "deviceScaleFactor": 1, "mobile": False})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    async def screenshot_element(self, selector: str, path: Path, margin: int = 8) -> Path:
        """Save a PNG of the element matching a CSS selector. The page is scrolled to put it just below a sticky
        header (90 px); an element taller than the viewport is cut at the viewport's bottom, so open the page
        with a tall enough viewport (goto's height) for big elements."""
        box = await self.evaluate(
            f"(async () => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            " const fixed = getComputedStyle(e).position === 'fixed';"
            " if (!fixed) window.scrollTo(0, Math.max(0, e.getBoundingClientRect().top + scrollY - 90));"
            " await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));"
            " const r = e.getBoundingClientRect();"
            " return {x: r.left + scrollX, y: r.top + scrollY, width: r.width,"
            " height: Math.min(r.height, innerHeight - r.top)}; })()")
        if not box:
            raise BrowserError(f"no element matches {selector!r}")
        clip = {"x": max(0, box["x"] - margin), "y": max(0, box["y"] - margin), "width": box["width"] + 2 * margin,
                "height": box["height"] + 2 * margin, "scale": 1}
        # Not captureBeyondViewport: resizing the viewport for the shot makes responsive plots re-layout
        # half-way.
        shot = await self.send("Page.captureScreenshot", {"format": "png", "clip": clip}, timeout=60.0)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def errors(self) -> list[str]:
        """Uncaught exceptions, console.error/assert calls and error log entries seen so far."""
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append(f"exception: {d.get('text')} {d.get('exception', {}).get('description', '')} "
                           f"at {d.get('url', '')}:{d.get('lineNumber')}")
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console.error: " + " ".join(str(a.get("value", a.get("description", "")))
                                                        for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                entry = p["entry"]
                out.append(f"log: {entry.get('text')} {entry.get('url', '')}")
        return out


class Browser:
    def __init__(self, port: int, session: aiohttp.ClientSession, tg: asyncio.TaskGroup) -> None:
        self.port = port
        self._session = session
        self._tg = tg
        self._readers: list[asyncio.Task[None]] = []
        self._sockets: list[aiohttp.ClientWebSocketResponse] = []

    async def page(self) -> Page:
        """A new tab with its own DevTools connection."""
        async with self._session.put(f"http://127.0.0.1:{self.port}/json/new?about:blank") as resp:
            target = await resp.json(content_type=None)
        ws = await self._session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
        self._sockets.append(ws)
        page = Page(ws)
        self._readers.append(self._tg.create_task(page._read()))
        return page

    async def _close(self) -> None:
        for ws in self._sockets:
            await ws.close()
        for task in self._readers:
            task.cancel()


async def _read_port(profile: Path, proc: asyncio.subprocess.Process, timeout: float) -> int:
    port_file = profile / "DevToolsActivePort"
    async with asyncio.timeout(timeout):
        while True:
            if port_file.is_file():
                text = port_file.read_text().split("\n")
                if text and text[0].strip().isdigit():
                    return int(text[0])
            if proc.returncode is not None:
                raise BrowserError(f"chromium exited with {proc.returncode} before listening")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def launch(binary: str | None = None, timeout: float = 30.0) -> AsyncIterator[Browser]:
    """Start headless Chromium with a temporary profile; end it (by pid) when the block exits."""
    binary = binary or find_chromium()
    if not binary:
        raise BrowserError("no chromium found (install Debian's chromium or set $CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="report-chromium-", ignore_cleanup_errors=True) as tmp:
        profile = Path(tmp)
        # Its own session (process group), so that ending it ends its renderer and helper processes too.
        proc = await asyncio.create_subprocess_exec(
            binary, *FLAGS, f"--user-data-dir={profile}", "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
        try:
            port = await _read_port(profile, proc, timeout)
            async with aiohttp.ClientSession() as session, asyncio.TaskGroup() as tg:
                browser = Browser(port, session, tg)
                try:
                    yield browser
                finally:
                    await browser._close()
        finally:
            await _end(proc)


async def _end(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM to the process group we started (pgid = its pid), SIGKILL if it lingers."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            async with asyncio.timeout(grace):
                await proc.wait()
                # The group's other members exit with their parent; give them a moment to let go of the profile.
                while True:
                    try:
                        os.killpg(proc.pid, 0)
                    except ProcessLookupError:
                        return
                    await asyncio.sleep(0.05)
        except TimeoutError:
            continue


async def _main(target: str, out: Path, width: int) -> int:
    url = target if "://" in target else Path(target).resolve().as_uri()
    async with launch() as browser:
        page = await browser.page()
        await page.goto(url, width=width)
        with contextlib.suppress(TimeoutError):
            await page.wait_for("document.body && document.body.dataset.ready === '1'", timeout=30)
        await page.screenshot(out)
        for e in page.errors():
            print(e, file=sys.stderr)
        return 1 if page.errors() else 0


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print("usage: python -m reports.browser URL_OR_FILE OUT.png [WIDTH]", file=sys.stderr)
        sys.exit(254)
    sys.exit(asyncio.run(_main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 1400)))
