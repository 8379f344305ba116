"""The dashboard in a real browser: Debian's chromium driven by Playwright, against a real
`cerebros serve` (auth on) and a real worker on a database of this package's own.

Chromium is not downloaded by Playwright (no network): /usr/bin/chromium from Debian is
used, and its absence is a failure, not a skip (`.ci/run` installs it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, sync_playwright

from tests.support.postgres import migrated_database
from tests.support.processes import api_server, service_env, worker_process

CHROMIUM = os.environ.get("CEREBROS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
TOKEN_PATTERN = re.compile(r"cer_[0-9a-f]{12}_\S+")


@dataclass
class Service:
    base: str
    env: dict[str, str]
    log_dir: Path
    token: str  # an admin token (owner "ui"), made with `cerebros token create`

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def create_token(env: dict[str, str], owner: str, *, admin: bool = False) -> str:
    """A token from the real command (`python -m app.cli token create`), as a user makes one."""
    args = [sys.executable, "-m", "app.cli", "token", "create", "--owner", owner]
    done = subprocess.run(
        [*args, "--admin"] if admin else args,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = TOKEN_PATTERN.search(done.stdout)
    assert found, f"no token in the output of token create: {done.stdout!r} {done.stderr!r}"
    return found.group(0)


@pytest.fixture(scope="package")
def database_url(admin_url: str) -> Iterator[str]:
    """This package's own database: its worker takes every queued job it finds."""
    yield from migrated_database(admin_url, prefix="cerebros_ui")


@pytest.fixture(scope="package")
def service(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    log_dir = tmp_path_factory.mktemp("ui-service")
    env = service_env(
        database_url,
        CEREBROS_AUTH="true",
        CEREBROS_ARTIFACTS_DIR=str(log_dir / "artifacts"),
        CEREBROS_STREAM_AUTH_RECHECK_SECONDS="1",  # a revoked token's streams end within 1 s
    )
    token = create_token(env, "ui", admin=True)
    with api_server(env, log_dir) as base, worker_process(env, log_dir):
        yield Service(base, env, log_dir, token)


@pytest.fixture(scope="package")
def chromium_path() -> str:
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"chromium is not installed at {CHROMIUM}: the dashboard tests need a real browser. "
            "Install it with `apt-get update && apt-get install -y chromium` (.ci/run does), "
            "or point CEREBROS_TEST_CHROMIUM at one.",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="package")
def browser(chromium_path: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Console:
    """What the page said: console errors and uncaught exceptions, with expected ones named."""

    messages: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def on_message(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.messages.append(message.text)

    def on_page_error(self, error: Error) -> None:
        self.messages.append(f"uncaught: {error}")

    def allow(self, pattern: str) -> None:
        """Expect errors matching `pattern` (e.g. the browser's note on a 422 answer)."""
        self.allowed.append(re.compile(pattern))

    @property
    def errors(self) -> list[str]:
        return [m for m in self.messages if not any(p.search(m) for p in self.allowed)]


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    """A fresh tab (own sessionStorage) at 1280x800; fails the test on any console error."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    tab.on("console", console.on_message)
    tab.on("pageerror", console.on_page_error)
    yield tab
    context.close()
    assert console.errors == [], f"console errors: {console.errors}"


@pytest.fixture(scope="package")
def artifacts() -> Path:
    """Screenshots land in test-artifacts/ui/ (ignored by git)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
