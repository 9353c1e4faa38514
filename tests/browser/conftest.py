"""Real-browser tests: Playwright for Python driving the system's Chromium.

No browser is downloaded: Playwright launches the Chromium the machine has
(Debian's ``chromium`` package, ``/usr/bin/chromium``, or ``PAYGATE_TEST_CHROMIUM``).
Without Playwright or a Chromium these tests are skipped, unless
``PAYGATE_TEST_BROWSER=1`` says they must run (CI sets it): then they fail.

Every test here is marked ``browser`` (``pytest -m browser`` runs them alone).
Screenshots go to ``PAYGATE_TEST_SCREENSHOTS`` or a temporary folder, and each
path is printed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REQUIRED = os.environ.get("PAYGATE_TEST_BROWSER") == "1"
# Chromium's own calls home are refused by a closed network; these keep it quiet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items: list[Any]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"PAYGATE_TEST_BROWSER=1 but {reason}")
    pytest.skip(f"{reason} (set PAYGATE_TEST_BROWSER=1 to make this a failure)")


def _chromium() -> str | None:
    candidates = [os.environ.get("PAYGATE_TEST_CHROMIUM"), "/usr/bin/chromium"]
    candidates += [shutil.which(name) for name in ("chromium", "chromium-browser")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (pip install playwright)")
    executable = _chromium()
    if executable is None:
        _unavailable("no Chromium found (apt-get install chromium)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests
    # make between page actions are still synchronous.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page at 1280 x 800; ``page.console_errors`` collects the console's errors
    (a Content-Security-Policy violation is one)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    # Browsers ask every site for a favicon; its 404 is not the page's error.
    context.route("**/favicon.ico", lambda route: route.fulfill(status=204))
    new_page = context.new_page()
    errors: list[str] = []
    new_page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    new_page.on("pageerror", lambda exc: errors.append(str(exc)))
    new_page.console_errors = errors
    yield new_page
    context.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("PAYGATE_TEST_SCREENSHOTS")
    folder = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def screenshot(screenshot_dir: Path) -> Callable[[Any, str], Path]:
    """``screenshot(page, "name")`` writes ``name.png`` (the full page) and returns its path."""

    def take(target_page: Any, name: str) -> Path:
        path = screenshot_dir / f"{name}.png"
        target_page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path

    return take
