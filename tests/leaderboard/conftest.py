"""Fixtures: a fresh leaderboard database per test, SQLite always, PostgreSQL when available."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

POSTGRES_ENV = "TURNGYM_TEST_POSTGRES_URL"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
NO_BROWSER = (
    "chromium/chromedriver not found: install Debian's chromium and chromium-driver: "
    "bash .ci/chromium.sh"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL (or path) of an empty leaderboard database, dropped after the test."""
    if request.param == "sqlite":
        yield str(tmp_path / "leaderboard.db")
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL not available: set {POSTGRES_ENV} "
                    "(bash .ci/postgres.sh starts one)")  # fmt: skip
    sa = pytest.importorskip("sqlalchemy")
    # One schema per test, selected through the connection's search_path, so tests never see
    # each other's tables and nothing needs CREATE DATABASE rights.
    schema = f"turngym_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = sa.engine.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def store(store_url: str):
    from turngym.leaderboard.store import LeaderboardStore

    with LeaderboardStore(store_url) as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium through its chromedriver; Selenium Manager never downloads anything."""
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip(NO_BROWSER)
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # CSP violations show here
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SE_OFFLINE", "true")
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(10)
    yield driver
    driver.quit()
