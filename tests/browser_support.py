"""Headless Chromium driven by Selenium, for the local server's web pages.

Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them where it can); the
browser starts with no network of its own (no component updates, sync or background
requests) and a fresh profile. Where it cannot run, ``chromium()`` skips with one line.
"""

from __future__ import annotations

import shutil
from typing import Any, Optional

import pytest

ARGUMENTS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
)


def missing() -> Optional[str]:
    """What is missing to run the browser tests, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the dev extra has it on Python 3.10+)"
    if not _browser():
        return "no chromium here (apt-get install chromium chromium-driver)"
    if not shutil.which("chromedriver"):
        return "no chromedriver here (apt-get install chromium-driver)"
    return None


def _browser() -> Optional[str]:
    return next((found for name in ("chromium", "chromium-browser") for found in [shutil.which(name)] if found), None)


def chromium(profile: str, javascript: bool = True) -> Any:
    """A started headless Chromium with its profile in the (new, empty) folder ``profile``
    (``quit()`` it), or a skip saying what is missing."""
    absent = missing()
    if absent:
        pytest.skip("browser tests skipped: %s" % absent)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _browser() or ""
    for argument in ARGUMENTS:
        options.add_argument(argument)
    options.add_argument("--user-data-dir=%s" % profile)
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    # The driver named, so that Selenium never looks for (or downloads) one of its own.
    return webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))


def text_of(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css).text


def texts_of(driver: Any, css: str) -> list:
    from selenium.webdriver.common.by import By

    return [element.text for element in driver.find_elements(By.CSS_SELECTOR, css)]


def wait_for(driver: Any, condition: Any, seconds: float = 15) -> Any:
    """``condition(driver)`` once it is true (Selenium polls); a timeout fails the test."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds, poll_frequency=0.1).until(condition)


def submit(driver: Any, css: str) -> None:
    """Click the button or link at ``css`` and wait until the page it leads to has replaced this one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions

    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.CSS_SELECTOR, css).click()
    wait_for(driver, expected_conditions.staleness_of(old))
