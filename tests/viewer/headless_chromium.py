"""Debian's Chromium, headless, driven by its own chromedriver (Selenium never downloads one):
what the viewer tests and ``bench/viewer.py`` open pages with."""

from __future__ import annotations

import os
import shutil

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

MISSING = (
    "chromium and chromedriver are missing: `make test` installs Debian's chromium and "
    "chromium-driver"
)


def headless_chromium(width: int = 1400, height: int = 900) -> webdriver.Chrome:
    """A fresh browser; raises FileNotFoundError naming the packages when they are missing."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        raise FileNotFoundError(MISSING)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        f"--window-size={width},{height}",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ):
        options.add_argument(argument)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium's sandbox refuses to run as root
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.set_page_load_timeout(60)
    return chrome
