"""Helpers for the browser test of the book: a local HTTP server, headless Chromium driven over the
Chrome DevTools Protocol (CDP), and a static checker of every link of the built site.

No new dependency: the websocket client is tornado's, which Jupyter's kernel machinery already installs.
Chromium is the Debian package ``chromium`` (``apt-get install -y chromium``); any Chromium or Chrome
binary works, found as ``$EQUIV_CHROMIUM`` or on ``PATH``. :func:`check_site_links` needs no browser: it
reads the HTML files themselves.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import http.server
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import unquote, urlsplit

__all__ = ["find_chromium", "serve", "Chromium", "CDPError", "check_site_links", "LINK_ATTRIBUTES", "NOT_PAGES"]

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The browser binary: ``$EQUIV_CHROMIUM``, else the first of :data:`CHROMIUM_NAMES` on ``PATH``."""
    env = os.environ.get("EQUIV_CHROMIUM")
    if env:
        return env if Path(env).is_file() or shutil.which(env) else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


#: top-level folders of a built site that hold no pages (theme assets, among them Jinja templates ending .html)
NOT_PAGES = ("_static",)

#: the (tag, attribute) pairs whose value is a link the checker follows
LINK_ATTRIBUTES = (("a", "href"), ("link", "href"), ("script", "src"), ("img", "src"), ("source", "src"),
                   ("iframe", "src"), ("video", "src"), ("audio", "src"))


class _Page(HTMLParser):
    """The ids (``id`` and ``name`` attributes) and the links (:data:`LINK_ATTRIBUTES`) of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)
            if (tag, key) in LINK_ATTRIBUTES and value is not None:
                self.links.append(value.strip())


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    page.close()
    return page


def check_site_links(root: str | os.PathLike, *, forbidden: Iterable[str] = ()) -> list[str]:
    """Every problem with the links of every ``*.html`` page under ``root`` (a built site), one line each.

    Pages are the HTML files outside :data:`NOT_PAGES` (the themes copy Jinja templates into ``_static/``).

    A link into the site itself (no scheme and no ``//`` host: ``other.html``, ``../_static/x.css``,
    ``/search.html``, ``#anchor``, ``other.html#anchor``) must name a file under ``root`` (a folder stands for
    its ``index.html``; query strings are ignored) and, with a ``#fragment``, the target HTML page must have an
    element with that id or name. A link that leaves ``root`` is a problem too. An external link (``https:``,
    ``mailto:``, ``//host/...``; ``data:``, ``blob:`` and ``javascript:`` are not links) is only checked against
    ``forbidden``: it must not contain any of those strings (case-insensitive). Returns ``[]`` when all is well;
    raises ValueError when ``root`` is no folder or holds no page (so it never passes vacuously).
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise ValueError(f"no built site at {root}")
    forbidden = tuple(f.lower() for f in forbidden)
    pages: dict[Path, _Page] = {}

    def page(path: Path) -> _Page:
        if path not in pages:
            pages[path] = _parse(path)
        return pages[path]

    sources = [p for p in sorted(root.rglob("*.html")) if p.relative_to(root).parts[0] not in NOT_PAGES]
    if not sources:
        raise ValueError(f"no HTML page under {root}")
    problems = []
    for source in sources:
        name = source.relative_to(root).as_posix()
        for link in page(source).links:
            parts = urlsplit(link)
            if parts.scheme in ("data", "blob", "javascript"):
                continue
            if parts.scheme or link.startswith("//"):
                if any(f in link.lower() for f in forbidden):
                    problems.append(f"{name}: {link} -> a made-up external link")
                continue
            target_path, fragment = unquote(parts.path), unquote(parts.fragment)
            if not target_path:
                target = source
            elif target_path.startswith("/"):
                target = root / target_path.lstrip("/")
            else:
                target = source.parent / target_path
            target = Path(os.path.normpath(target))
            if target != root and root not in target.parents:
                problems.append(f"{name}: {link} -> outside the site")
                continue
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                problems.append(f"{name}: {link} -> no file {target.relative_to(root).as_posix()}")
            elif fragment and target.suffix == ".html" and fragment not in page(target).ids:
                problems.append(f"{name}: {link} -> no element with id {fragment!r} in "
                                f"{target.relative_to(root).as_posix()}")
    return problems


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass


@contextlib.contextmanager
def serve(directory: str | os.PathLike) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (a free port) in a thread; yields the base URL ending in ``/``."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class CDPError(RuntimeError):
    """A CDP command failed, timed out, or the page threw while evaluating an expression."""


class Chromium:
    """Headless Chromium with one page, driven over CDP (``with Chromium(binary) as browser: ...``).

    Only same-origin requests of the served site and ``data:``/``blob:`` URLs are let through; every other
    request (CDNs, fonts, analytics) is failed at once, so the test never waits on a network it does not have.
    """

    FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
             "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio")

    def __init__(self, binary: str, *, allowed_origin: str, width: int = 1280, height: int = 900,
                 startup_timeout: float = 60.0) -> None:
        self.binary = binary
        self.allowed_origin = allowed_origin
        self.width, self.height = width, height
        self.startup_timeout = startup_timeout
        self.events: list[dict] = []
        self.exceptions: list[str] = []
        self.blocked: list[str] = []
        self._next_id = 0

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "Chromium":
        self._profile = tempfile.TemporaryDirectory(prefix="equiv-chromium-")
        args = [self.binary, *self.FLAGS, f"--user-data-dir={self._profile.name}", "--remote-debugging-port=0",
                f"--window-size={self.width},{self.height}", "about:blank"]
        self._log = open(Path(self._profile.name) / "chromium.log", "wb")
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            port = self._devtools_port()
            targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
            page = next(t for t in targets if t.get("type") == "page")
            self.loop = asyncio.new_event_loop()
            self.socket = self.loop.run_until_complete(self._connect(page["webSocketDebuggerUrl"]))
            self.call("Page.enable")
            self.call("Runtime.enable")
            self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                      deviceScaleFactor=1, mobile=False)
            self.call("Fetch.enable", patterns=[{"urlPattern": "*"}])
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        sock = getattr(self, "socket", None)
        if sock is not None:
            sock.close()
        loop = getattr(self, "loop", None)
        if loop is not None:
            loop.close()
        if self.process.poll() is None:
            # our own process group only (start_new_session=True): the browser and its helpers
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()
        self._profile.cleanup()

    def _devtools_port(self) -> int:
        marker = Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CDPError(f"{self.binary} exited with code {self.process.returncode}: {self.log_tail()}")
            if marker.is_file():
                lines = marker.read_text().split()
                if lines:
                    return int(lines[0])
            time.sleep(0.1)
        raise CDPError(f"{self.binary} did not open a DevTools port within {self.startup_timeout:.0f} s: "
                       f"{self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        self._log.flush()
        path = Path(self._profile.name) / "chromium.log"
        return path.read_text(errors="replace")[-chars:] if path.is_file() else ""

    @staticmethod
    async def _connect(url: str):
        from tornado.websocket import websocket_connect

        return await websocket_connect(url, max_message_size=512 * 1024 * 1024)

    # ------------------------------------------------------------------ protocol
    def _read(self, timeout: float) -> dict:
        async def read():  # tornado schedules on the running loop: always run inside our own
            return await asyncio.wait_for(self.socket.read_message(), timeout)

        message = self.loop.run_until_complete(read())
        if message is None:
            raise CDPError(f"the DevTools connection closed: {self.log_tail()}")
        data = json.loads(message)
        if data.get("method") == "Fetch.requestPaused":
            self._route(data["params"])
        elif data.get("method") == "Runtime.exceptionThrown":
            details = data["params"]["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text", "")
            self.exceptions.append(f"{details.get('url', '?')}:{details.get('lineNumber', '?')}: {text}")
        return data

    def _route(self, params: dict) -> None:
        url = params["request"]["url"]
        if url.startswith((self.allowed_origin, "data:", "blob:")):
            self._send("Fetch.continueRequest", requestId=params["requestId"])
        else:
            self.blocked.append(url)
            self._send("Fetch.failRequest", requestId=params["requestId"], errorReason="BlockedByClient")

    def _send(self, method: str, **params: Any) -> int:
        self._next_id += 1
        message = json.dumps({"id": self._next_id, "method": method, "params": params})

        async def write():
            await self.socket.write_message(message)

        self.loop.run_until_complete(write())
        return self._next_id

    def call(self, method: str, timeout: float = 60.0, **params: Any) -> dict:
        """Send one CDP command and return its result (events that arrive meanwhile are kept)."""
        msg_id = self._send(method, **params)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError(f"{method}: no answer within {timeout:.0f} s")
            try:
                data = self._read(left)
            except asyncio.TimeoutError:
                raise CDPError(f"{method}: no answer within {timeout:.0f} s") from None
            if data.get("id") == msg_id:
                if "error" in data:
                    raise CDPError(f"{method}: {data['error'].get('message')} {data['error'].get('data', '')}")
                return data.get("result", {})
            if "method" in data:
                self.events.append(data)

    def wait_event(self, name: str, timeout: float = 60.0) -> dict:
        """Wait for the next event ``name`` (one received earlier counts) and return its params."""
        for i, event in enumerate(self.events):
            if event["method"] == name:
                return self.events.pop(i)["params"]
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError(f"no {name} event within {timeout:.0f} s")
            try:
                data = self._read(left)
            except asyncio.TimeoutError:
                raise CDPError(f"no {name} event within {timeout:.0f} s") from None
            if data.get("method") == name:
                return data["params"]
            if "method" in data:
                self.events.append(data)

    # ------------------------------------------------------------------ page helpers
    def goto(self, url: str, timeout: float = 60.0) -> None:
        """Load ``url`` and wait for its load event."""
        self.events.clear()
        result = self.call("Page.navigate", url=url, timeout=timeout)
        if result.get("errorText"):
            raise CDPError(f"cannot load {url}: {result['errorText']}")
        self.wait_event("Page.loadEventFired", timeout=timeout)

    def evaluate(self, expression: str, timeout: float = 60.0) -> Any:
        """The JSON value of a JavaScript expression (promises are awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True,
                           timeout=timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CDPError(f"JavaScript error: {details.get('exception', {}).get('description', details.get('text'))}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 30.0, interval: float = 0.25) -> Any:
        """Poll a JavaScript expression until it is truthy; return its value (CDPError on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise CDPError(f"still false after {timeout:.0f} s: {expression}")
            time.sleep(interval)

    def screenshot(self, path: str | os.PathLike, max_height: int = 12000) -> Path:
        """Save a PNG of the whole page (at most ``max_height`` CSS pixels tall)."""
        metrics = self.call("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        height = int(min(max(size["height"], self.height), max_height))
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1})
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
