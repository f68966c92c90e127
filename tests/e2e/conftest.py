import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# between page actions are ordinary blocking calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            # The live server speaks plain http on localhost; the MTurk bot frames it in a page
            # served as https://workersandbox.mturk.com, which Chromium would block as mixed
            # content and as a public site reaching into the local network.
            args=[
                "--no-sandbox",
                "--disable-background-networking",
                "--allow-running-insecure-content",
                "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,"
                "PrivateNetworkAccessForNavigations",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def screenshot_dir() -> Path | None:
    """Set SCREENSHOT_DIR to keep screenshots of every page the bots see."""
    folder = os.environ.get("SCREENSHOT_DIR")
    if not folder:
        return None
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path
