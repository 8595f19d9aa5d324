"""From `turngym eval` to the page in a browser: real runs, a real store, the real CLI server."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from turngym.cli import main


def _cli(*argv: str) -> str:
    buf = io.StringIO()
    assert main(list(argv), stdout=buf) == 0, buf.getvalue()
    return buf.getvalue()


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real eval runs submitted to a SQLite board through the CLI."""
    pytest.importorskip("sqlalchemy")
    root = tmp_path_factory.mktemp("e2e")
    db = root / "board.db"
    for name, seed in (("nightly", "0"), ("candidate", "1")):
        out = root / name
        _cli("eval", "smoke", "--agents", "random", "oracle", "--episodes", "4", "--seeds", seed,
             "--out", str(out))
        assert f"submitted {name}" in _cli("leaderboard", "submit", str(out), "--db", str(db))
    return db


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.integration
def test_served_board_shows_the_submitted_runs_and_sorts(board: Path, browser: Any) -> None:
    pytest.importorskip("uvicorn")
    from selenium.webdriver.common.by import By

    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "turngym.cli", "leaderboard", "serve", "--db", str(board),
         "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 30
        while True:
            try:
                browser.get(url)
                if browser.title == "turngym leaderboard":
                    break
            except Exception:  # the server is still starting
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        rows = browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr.lb-row")
        agents = [r.get_attribute("data-agent") for r in rows]
        assert sorted(agents) == ["oracle", "oracle", "random", "random"]
        assert agents[:2] == ["oracle", "oracle"]  # best first
        assert {r.get_attribute("data-run") for r in rows} == {"nightly", "candidate"}
        header = browser.find_element(By.CSS_SELECTOR, '#leaderboard th[data-key="mean"]')
        header.click()
        rows = browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr.lb-row")
        assert [r.get_attribute("data-agent") for r in rows][-2:] == ["oracle", "oracle"]
        envs = browser.find_elements(By.CSS_SELECTOR, "section.env-breakdown")
        assert {e.get_attribute("data-env") for e in envs} >= {"turngym/Sokoban-v0"}
    finally:
        proc.terminate()
        proc.wait(10)


def test_export_and_gate_on_the_same_board(board: Path, tmp_path: Path) -> None:
    page = tmp_path / "board.html"
    _cli("leaderboard", "export", str(page), "--db", str(board))
    html = page.read_text()
    assert "nightly" in html and "candidate" in html
    report = tmp_path / "gate.md"
    buf = io.StringIO()
    code = main(["leaderboard", "gate", str(board.parent / "candidate"), "--baseline",
                 "nightly", "--db", str(board), "--report", str(report)], stdout=buf)
    assert code == 0 and "PASS" in report.read_text()
