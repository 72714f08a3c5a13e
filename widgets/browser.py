"""Driving the served app in a real browser: the suite's browser tests, the dashboard benchmark
and the README's screenshots share these.

Chromium is Debian's (``apt-get install chromium``), driven by the ``playwright`` package through
``executable_path``; ``playwright install`` is never needed.  ``--no-sandbox`` lets it run as
root (CI containers).  :func:`offline` makes a browser context refuse every request to a host
other than this machine and records it, so a test can assert that the app works offline.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


def chromium_path() -> str | None:
    """Debian's Chromium, or ``None`` when it is not installed."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def launch(playwright, **options):
    """Start headless Chromium (Debian's) through Playwright."""
    return playwright.chromium.launch(
        executable_path=chromium_path(),
        headless=True,
        args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        **options,
    )


def offline(context) -> list[str]:
    """Abort every request of ``context`` to a non-local host; the returned list collects their
    URLs as they happen."""
    blocked: list[str] = []

    def handle(route):
        url = route.request.url
        host = urlparse(url).hostname or ""
        if url.startswith(("data:", "blob:", "about:", "file:")) or host in LOCAL_HOSTS:
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    context.route("**/*", handle)
    return blocked


VIEWPORT = {"width": 1400, "height": 1000}


def open_session(browser, url: str):
    """A new browser session of the app at ``url`` (its own Workbench), offline, waited for
    until the Build tab's diagram is drawn: ``(context, page, blocked, errors)``, the last two
    filled as non-local requests are refused and the page raises errors."""
    context = browser.new_context(viewport=VIEWPORT)
    blocked = offline(context)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    page.locator(".react-flow__node").first.wait_for(timeout=120_000)  # the builder is drawn
    return context, page, blocked, errors


def tab(page, name: str) -> None:
    """Click the app's tab ``name`` and give it a moment to draw."""
    page.locator(".bk-tab", has_text=name).first.click()
    time.sleep(0.5)


def status(page) -> str:
    """The dashboard's status line (Panel renders panes in shadow roots, which CSS locators
    pierce but the host's inner_text does not include)."""
    line = page.locator(".wb-status p")
    return line.first.inner_text() if line.count() else ""


def wait_for(condition, timeout: float = 60.0, what: str = "condition", seen=None) -> None:
    """Poll ``condition()`` until it is true; fail naming ``what`` after ``timeout`` s, with
    what ``seen()`` then returns (e.g. the status line and the server's log) when given."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            detail = f"; seen: {seen()}" if seen is not None else ""
            raise AssertionError(f"timed out waiting for {what}{detail}")
        time.sleep(0.2)


def app_log(url: str) -> Path:
    """The log file of the app :func:`running_app` serves at ``url``."""
    port = urlparse(url).port
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"workbench-app-{port}.log"


def log_tail(url: str, lines: int = 30) -> str:
    """The last ``lines`` lines of that app's log (what a failed browser test shows)."""
    try:
        return "\n".join(app_log(url).read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(
    *args: str, port: int | None = None, timeout: float = 120.0, with_process: bool = False
):
    """Serve the app (``workbench app``) in a child process; yields its URL, or with
    ``with_process`` the pair ``(url, Popen)`` (the load benchmark reads the server's memory
    through its pid).  The child's output goes to a log file whose tail is shown if the server
    does not come up."""
    port = port or free_port()
    url = f"http://localhost:{port}/"
    log = app_log(url)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with open(log, "w") as out:
        command = [sys.executable, "-m", "workbench.cli", "app", "--port", str(port), *args]
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if child.poll() is not None:
                raise RuntimeError(f"the app exited ({child.returncode}):\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the app did not answer in {timeout} s:\n{log.read_text()}")
            time.sleep(0.5)
        yield (url, child) if with_process else url
    finally:
        child.terminate()
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
