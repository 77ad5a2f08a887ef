"""Screenshots of the local server's main pages, for docs/local-server.md.

    .venv/bin/python -m tests.ui_screenshots docs/

Fills a fresh local server with the demo's story through the real pipeline, adds two
exceptions captured by PostHog's own SDK, and has headless Chromium save each page as PNG.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from opentelemetry.sdk._logs import LoggerProvider

import posthog_otel
from posthog_otel._local import demo
from posthog_otel._local.server import LocalServer
from posthog_otel._local.store import Store, project_of
from posthog_otel._local.ui_exceptions import issue_of
from posthog_otel._local.ui_markup import href

from .browser_support import chromium
from .test_flags import DEFINITIONS

WIDTH = 1280


def main(folder: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        store = Store(Path(scratch) / "screens.sqlite3")
        with LocalServer(store, flags=DEFINITIONS) as server:
            _fill(server.url)
            exception = store.events(event="$exception")[0]
            project = project_of(demo.LOCAL_KEY)
            pages = {
                "ui-person.png": href("person", demo.USER, project=project),
                "ui-group.png": href("groups", "company", "acme_corp", project=project),
                "ui-events.png": href("events", project=project),
                "ui-exception.png": href("exceptions", issue_of(exception["properties"]).fingerprint, project=project),
                "ui-flag-explain.png": href("feature_flags", "beta", distinct_id=demo.USER, project=project),
            }
            driver = chromium(str(Path(scratch) / "chromium"))
            try:
                for name, path in pages.items():
                    _shoot(driver, server.url + path, Path(folder) / name)
            finally:
                driver.quit()
        store.close()


def _fill(url: str) -> None:
    provider = LoggerProvider(shutdown_on_exit=False)
    pipeline = posthog_otel.configure(
        api_key=demo.LOCAL_KEY, host=url, logger_provider=provider, schedule_delay_millis=50
    )
    for _, step in demo.scenario():
        step()
    pipeline.flush()
    pipeline.shutdown()
    provider.shutdown()
    from posthog import Posthog  # PostHog's own SDK: its $exception payload

    client = Posthog(demo.LOCAL_KEY, host=url, sync_mode=True, disable_geoip=True)
    for cart in ({}, {"items": []}):
        try:
            _checkout(cart)
        except KeyError as error:
            client.capture_exception(error, distinct_id=demo.USER)
    client.shutdown()


def _checkout(cart: dict) -> int:
    return len(cart["items"]) + cart["total"]


def _shoot(driver, url: str, path: Path) -> None:
    driver.set_window_size(WIDTH, 900)
    driver.get(url)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, min(height, 1800))
    driver.save_screenshot(str(path))
    print(path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs")
