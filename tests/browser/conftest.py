"""Browser tests: Playwright's Python package driving Debian's chromium against the demo shop.

No browser is downloaded: ``/usr/bin/chromium`` (``make chromium`` installs Debian's package as
root) is launched directly; without it every test here is skipped with the reason.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from rtp.config import Settings
from rtp.http import ServeSettings, create_app
from rtp.http.testing import CHROMIUM_ARGS, IPHONE_UA, ServerThread
from rtp.testing import RedisServer

CHROMIUM = os.environ.get("RTP_CHROMIUM", "/usr/bin/chromium")
ARGS = CHROMIUM_ARGS
IPHONE = IPHONE_UA


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(
            f"no chromium at {CHROMIUM}: run `make chromium` (root) or apt-get install chromium"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shop_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def shop(shop_redis: RedisServer) -> Iterator[ServerThread]:
    """The demo shop (``rtp serve --demo``'s app) on a private Redis."""
    settings = ServeSettings(rtp=Settings(redis_url=shop_redis.url), demo=True)
    with ServerThread(create_app(settings)) as server:
        yield server


@pytest.fixture()
def r(shop_redis: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(shop_redis.url)
    yield c
    c.close()


@pytest.fixture()
def context(browser: Any) -> Iterator[Any]:
    """A fresh visitor on an iPhone (first-party storage empty), local time UTC."""
    ctx = browser.new_context(
        user_agent=IPHONE, viewport={"width": 420, "height": 900}, timezone_id="UTC"
    )
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


def wait_until(check: Any, timeout_s: float = 20.0, what: str = "a condition") -> Any:
    """Poll ``check()`` until it returns something truthy (then return it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.05)
