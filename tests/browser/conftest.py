"""Real-browser fixtures: a running `ootd serve` and Debian's headless Chromium driven by Playwright.

The browser is the OS package's /usr/bin/chromium (`make test` installs `chromium` and
`chromium-driver` with apt as root, best effort), launched by Playwright (pinned 1.64.1, whose
Chromium matches Debian's) through `executable_path`: no `playwright install`, no download.  Without
it the tests skip, saying why; `.ci/run` (OOTD_REQUIRE_MARKERS=browser) turns such a skip into a
failure.  Every test carries the `browser` marker.

The flags keep Chromium on loopback: this machine refuses its background connections (update
checks, sync, component downloads), so they are switched off, and each run gets a fresh profile.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from db import REPO_ROOT
from tests.conftest import SERVED_TEMPLATE, create_database, drop_database

CHROMIUM = os.environ.get("OOTD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives the web page in a real headless Chromium (Debian's)")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium executable, or a skip that says how to get it."""
    path = shutil.which(CHROMIUM) or CHROMIUM
    if not os.access(path, os.X_OK):
        pytest.skip(
            f"Chromium is not installed ({CHROMIUM}): `make test` installs Debian's chromium and chromium-driver "
            f"as root (apt-get install chromium chromium-driver); OOTD_CHROMIUM names another executable"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("Playwright is not installed: pip install -e '.[dev]' (playwright==1.64.1)")
    return path


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: `browser-artifacts` under the pytest basetemp (kept after the run)."""
    path = tmp_path_factory.getbasetemp() / "browser-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def served_app(pg_server, served_template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """`ootd serve` (gunicorn, one worker) over a fresh database holding the pools of SERVED_DAY.

    Started as a user starts it, with its own OOTD_HOME (so `ootd token` run with the same home mints
    tokens it accepts).
    """
    name = create_database(pg_server, SERVED_TEMPLATE)
    url = pg_server.dsn(name)
    home = tmp_path_factory.mktemp("browser-home")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("OOTD_API_SECRET", "PROMETHEUS_MULTIPROC_DIR")}
    env.update(DATABASE_URL=url, OOTD_HOME=str(home), TMPDIR=str(tmp_path_factory.mktemp("browser-serve-tmp")))
    log_path = tmp_path_factory.mktemp("browser-log") / "serve.log"
    log = log_path.open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "--workers", "1", "--threads", "4"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.seek(0)
            pytest.fail(f"ootd serve did not start:\n{log.read()}")
        time.sleep(0.1)
    try:
        yield {"base": base, "url": url, "home": home, "env": env, "log": log_path}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        drop_database(pg_server, name)


@pytest.fixture(scope="session")
def browser_context(chromium: str, tmp_path_factory: pytest.TempPathFactory):
    """One headless Chromium for the session, with a fresh user-data dir, at 1280x800."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
            timezone_id="UTC",
            locale="en-US",
        )
        try:
            yield context
        finally:
            context.close()


#: Chromium logs every 4xx answer to fetch() as a console error; the page shows those itself.
_EXPECTED_CONSOLE = "Failed to load resource: the server responded with a status of 4"


@pytest.fixture
def page(browser_context):
    """A new tab; at the end, the test fails if the page logged a JavaScript error or a CSP violation."""
    tab = browser_context.new_page()
    problems: list[str] = []

    def console(message) -> None:
        if message.type == "error" and not message.text.startswith(_EXPECTED_CONSOLE):
            problems.append(f"console error: {message.text}")

    tab.on("pageerror", lambda exc: problems.append(f"JavaScript error: {exc}"))
    tab.on("console", console)
    yield tab
    tab.close()
    assert not problems, "the page reported problems:\n" + "\n".join(problems)
