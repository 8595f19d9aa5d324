"""The leaderboard page: rendering, the FastAPI app on a real uvicorn server, a real browser."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from turngym.leaderboard.web import create_app, export_html, render_page

SOKOBAN, WORDLE = "turngym/Sokoban-v0", "turngym/Wordle-v1"


# --- Page data in the shape of LeaderboardStore.page_data() ------------------------------------
def _row(run: str, agent: str, kind: str, mean: float, per_env: dict[str, float]) -> dict:
    return {
        "run": run, "agent": agent, "kind": kind, "submitted": "2025-06-01T12:00:00+00:00",
        "git_sha": "abc1234", "turngym_version": "0.1.0",
        "mean": mean, "ci95": [max(0.0, mean - 0.1), min(1.0, mean + 0.1)], "n": 20 * len(per_env),
        "per_env": {env: {"mean": m, "ci95": [m - 0.1, m + 0.1], "n": 20}
                    for env, m in per_env.items()},
    }  # fmt: skip


def make_page(metric: str = "success", **overrides: Any) -> dict:
    """Four runs, deliberately not in rank order; grpo-run has no Wordle score.

    So grpo-run forms an env set of its own: its aggregate is ranked against nobody else's.
    """
    rows = [
        _row("random", "random", "eval", 0.1, {SOKOBAN: 0.05, WORDLE: 0.15}),
        _row("ppo-run", "hf:tiny-ppo", "bench", 0.75, {SOKOBAN: 0.9, WORDLE: 0.6}),
        _row("oracle", "oracle", "eval", 1.0, {SOKOBAN: 1.0, WORDLE: 1.0}),
        _row("grpo-run", "hf:tiny-grpo", "bench", 0.5, {SOKOBAN: 0.5}),
    ]
    rows[0]["n"] = 100  # sorts before 20 and 40 as text, after them as a number
    curves = [
        {"run": "ppo-run", "agent": "hf:tiny-ppo", "env": SOKOBAN, "metric": metric,
         "points": [[0, 0.1], [1000, 0.4], [2000, 0.9]]},
        {"run": "grpo-run", "agent": "hf:tiny-grpo", "env": SOKOBAN, "metric": metric,
         "points": [[0, 0.1], [1000, 0.3], [2000, 0.5]]},
        {"run": "ppo-run", "agent": "hf:tiny-ppo", "env": WORDLE, "metric": metric,
         "points": [[0, 0.0], [1000, 0.6]]},
    ]  # fmt: skip
    page = {
        "title": "turngym leaderboard", "generated": "2025-06-02T08:00:00+00:00",
        "metric": metric, "metrics": ["success", "outcome", "return", "turns"],
        "envs": [SOKOBAN, WORDLE], "rows": rows, "curves": curves,
    }  # fmt: skip
    return {**page, **overrides}


BEST_FIRST = ["oracle", "ppo-run", "random", "grpo-run"]  # env set 1 ranked, then set 2
MAIN_TABLE = ["oracle", "ppo-run", "random"]  # #leaderboard: the runs on both envs


class FakeStore:
    """Stands in for LeaderboardStore, whose own tests submit real runs."""

    def __init__(self, page: dict) -> None:
        self.page = page
        self.closed = False

    def page_data(self, metric: str = "success") -> dict:
        if metric not in self.page["metrics"]:
            raise ValueError(f"unknown metric {metric!r}")
        return {**self.page, "metric": metric}

    def close(self) -> None:
        self.closed = True


class _Elements(HTMLParser):
    """Collects (tag, attributes) of every start tag; attribute values come back unescaped."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def elements(page: str, tag: str, cls: str | None = None) -> list[dict[str, str | None]]:
    parser = _Elements()
    parser.feed(page)
    return [
        attrs
        for name, attrs in parser.found
        if name == tag and (cls is None or cls in (attrs.get("class") or "").split())
    ]


def _xtick_labels(svg: str) -> list[str]:
    return [part.split(">")[1].split("<")[0] for part in svg.split('class="xtick"')[1:]]


# --- render_page ---------------------------------------------------------------------------------
def test_rows_are_ranked_best_first_with_a_column_per_env() -> None:
    page = render_page(make_page())
    assert [r["data-run"] for r in elements(page, "tr", "lb-row")] == BEST_FIRST
    headers = [th for th in elements(page, "th") if th.get("data-key")]
    keys = [th["data-key"] for th in headers]
    common = ["rank", "run", "agent", "kind", "mean", "n"]
    assert keys == [*common, f"env:{SOKOBAN}", f"env:{WORDLE}", *common, f"env:{SOKOBAN}"]
    # Each table starts sorted by rank, which the header says for screen readers.
    assert [th.get("aria-sort") for th in headers] == (["ascending"] + [None] * 7
                                                       + ["ascending"] + [None] * 6)
    assert '0.750 <span class="ci">± 0.100</span>' in page
    assert 'id="leaderboard"' in page and page.startswith("<!DOCTYPE html>")


def test_equal_means_share_a_rank() -> None:
    data = make_page()
    data["rows"][0]["mean"] = 0.75  # random ties with ppo-run
    page = render_page(data)
    ranks = [td["data-value"] for td in elements(page, "td", "rank")]
    assert ranks == ["1", "2", "2", "1"]  # grpo-run is first of its own env set


def test_lower_is_better_metrics_rank_ascending() -> None:
    data = make_page("turns")
    for row, turns in zip(data["rows"], (9.0, 4.0, 3.0, 12.0), strict=True):
        row["mean"] = turns
        row["per_env"] = {SOKOBAN: {"mean": turns, "ci95": [turns - 1, turns + 1], "n": 20}}
    page = render_page(data)
    assert [r["data-run"] for r in elements(page, "tr", "lb-row")] == [
        "oracle", "ppo-run", "random", "grpo-run"
    ]  # fmt: skip
    assert "turns ↓" in page


def test_agents_on_fewer_envs_get_per_env_ranks_not_an_aggregate_one() -> None:
    """grpo-run (Sokoban only, 0.5) must not outrank random (both envs, 0.1) in aggregate."""
    data = make_page()
    data["rows"][3]["mean"] = 0.99  # its one env: a mean above everyone's aggregate but oracle
    page = render_page(data)
    tables = elements(page, "table", "leaderboard")
    assert [t["id"] for t in tables] == ["leaderboard", "leaderboard-set-2"]
    assert [t["data-env-set"] for t in tables] == ["set-1", "set-2"]
    assert "Evaluated on 2 envs" in page and "Evaluated on 1 env:" in page
    # Per-env ranks: on Sokoban everyone is comparable, grpo-run included.
    sokoban = page.split(f'data-env="{SOKOBAN}"')[1].split("</section>")[0]
    ranks = [cell.split("<")[0] for cell in sokoban.split('class="num env-rank">')[1:]]
    assert ranks == ["1", "2", "3", "4"]


def test_per_env_breakdown_is_sorted_best_first_per_env() -> None:
    page = render_page(make_page())
    sections = elements(page, "section", "env-breakdown")
    assert [s["data-env"] for s in sections] == [SOKOBAN, WORDLE]
    runs = [r["data-run"] for r in elements(page, "tr", "env-row")]
    # Sokoban: all four runs; Wordle: grpo-run has no score there and is left out.
    assert runs == ["oracle", "ppo-run", "grpo-run", "random", "oracle", "ppo-run", "random"]


def test_user_text_is_escaped_everywhere() -> None:
    evil_run, evil_agent = "<script>alert(1)</script>", '"><img src=x onerror=alert(2)>'
    data = make_page(title="<b>board</b>")
    data["rows"][0].update(run=evil_run, agent=evil_agent)
    data["curves"][0].update(run=evil_run, agent=evil_agent, env="<svg onload=alert(3)>")
    page = render_page(data)
    assert evil_run not in page and evil_agent not in page and "<svg onload" not in page
    assert page.count("<script>") == 1  # only the sorting script
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not elements(page, "img") and not elements(page, "b")
    # The names survive the round trip through the attributes intact.
    assert evil_run in [r["data-run"] for r in elements(page, "tr", "lb-row")]
    assert evil_agent in [p["data-agent"] for p in elements(page, "polyline", "curve")]


def test_empty_board_says_so() -> None:
    page = render_page(make_page(rows=[], curves=[]))
    assert "No submissions yet" in page and "turngym leaderboard submit" in page
    assert not elements(page, "tr", "lb-row") and "No learning curves yet" in page


def test_learning_curves_are_inline_svg_with_a_legend() -> None:
    page = render_page(make_page())
    charts = elements(page, "figure", "chart")
    assert [c["data-env"] for c in charts] == [SOKOBAN, WORDLE]
    lines = elements(page, "polyline", "curve")
    assert [(p["data-run"], len(p["points"].split())) for p in lines] == [
        ("ppo-run", 3), ("grpo-run", 3), ("ppo-run", 2)
    ]  # fmt: skip
    for line in lines:  # every point lies inside the 560 x 300 viewBox
        for point in line["points"].split():
            x, y = map(float, point.split(","))
            assert 0 <= x <= 560 and 0 <= y <= 300
    # A run keeps its colour from chart to chart.
    assert lines[0]["stroke"] == lines[2]["stroke"] != lines[1]["stroke"]
    assert page.count('<ul class="legend">') == 2 and "ppo-run (hf:tiny-ppo)" in page
    assert _xtick_labels(page)[:3] == ["0", "500", "1000"]
    assert "env steps" in page


def test_curve_axes_for_long_runs_flat_and_single_point_curves() -> None:
    curves = [
        {"run": "long", "agent": "a", "env": SOKOBAN, "metric": "success",
         "points": [[50_000, 0.5], [0, 0.5], [200_000, 0.5], [100_000, float("nan")]]},
        {"run": "one", "agent": "b", "env": WORDLE, "metric": "success", "points": [[10, 0.2]]},
        {"run": "none", "agent": "c", "env": WORDLE, "metric": "success", "points": []},
    ]  # fmt: skip
    page = render_page(make_page(curves=curves))
    sokoban, wordle = page.split('<figure class="chart"')[1:]
    # One unit per axis; points sorted by step; the NaN point dropped.
    assert _xtick_labels(sokoban) == ["0", "50k", "100k", "150k", "200k"]
    assert len(elements(sokoban, "polyline")[0]["points"].split()) == 3
    assert "0.45" in sokoban and "0.55" in sokoban  # a flat curve gets a range around it
    assert len(elements(wordle, "circle")) == 1  # a one-point curve shows as its dot
    assert "none" not in [p["data-run"] for p in elements(page, "polyline")]


def test_page_is_self_contained() -> None:
    page = render_page(make_page(), metric_links=True)
    assert "http://" not in page and "https://" not in page
    assert not elements(page, "link") and all("src" not in s for s in elements(page, "script"))


def test_metric_links_only_when_served() -> None:
    assert "?metric=" not in render_page(make_page())
    links = [a["href"] for a in elements(render_page(make_page(), metric_links=True), "a")]
    assert links == ["?metric=success", "?metric=outcome", "?metric=return", "?metric=turns"]


def test_incomplete_page_data_is_refused() -> None:
    data = make_page()
    del data["curves"]
    with pytest.raises(ValueError, match=r"lacks \['curves'\].*page_data"):
        render_page(data)


def test_export_writes_the_page(tmp_path: Path) -> None:
    store = FakeStore(make_page())
    path = export_html(store, tmp_path / "site" / "nested" / "index.html", metric="outcome")
    assert path == tmp_path / "site" / "nested" / "index.html"
    assert path.read_text(encoding="utf-8") == render_page(store.page_data("outcome"))
    assert [p.name for p in path.parent.iterdir()] == ["index.html"]  # no partial file left


def test_export_refuses_an_unknown_metric(tmp_path: Path) -> None:
    class LenientStore(FakeStore):  # returns data for any metric; the page must still refuse
        def page_data(self, metric: str = "success") -> dict:
            return {**self.page, "metric": metric}

    with pytest.raises(ValueError, match="unknown metric 'speed'; choose one of"):
        export_html(LenientStore(make_page()), tmp_path / "x.html", metric="speed")
    assert not (tmp_path / "x.html").exists()


def test_empty_store_listing_no_metrics_still_exports(tmp_path: Path) -> None:
    empty = make_page(rows=[], curves=[], metrics=[])
    path = export_html(FakeStore({**empty, "metrics": ["success"]}), tmp_path / "a.html")
    assert "No submissions yet" in path.read_text(encoding="utf-8")

    class Empty(FakeStore):  # a store that derives its metric list from rows it does not have
        def page_data(self, metric: str = "success") -> dict:
            return {**self.page, "metric": metric}

    assert "No submissions yet" in export_html(Empty(empty), tmp_path / "b.html").read_text()


def test_missing_web_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if the extra were not installed
    with pytest.raises(ImportError, match=r"fastapi is missing.*turngym\[harness\]"):
        create_app(FakeStore(make_page()))


# --- The app on a real uvicorn server ------------------------------------------------------------
@pytest.fixture(scope="module")
def store() -> FakeStore:
    return FakeStore(make_page())


@pytest.fixture(scope="module")
def live_server(store: FakeStore) -> Iterator[str]:
    """create_app(store) behind uvicorn on a free loopback port, in a background thread."""
    uvicorn = pytest.importorskip("uvicorn")
    pytest.importorskip("fastapi")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # a bound socket handed to uvicorn: no race for the port
    config = uvicorn.Config(create_app(store), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.mark.integration
def test_served_routes(live_server: str, store: FakeStore) -> None:
    import httpx

    with httpx.Client(base_url=live_server, timeout=5) as client:
        assert client.get("/health").json() == {"status": "ok"}
        api = client.get("/api/leaderboard", params={"metric": "outcome"})
        assert api.status_code == 200 and api.json() == store.page_data("outcome")
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert [r["data-run"] for r in elements(page.text, "tr", "lb-row")] == BEST_FIRST
        assert 'href="?metric=turns"' in page.text  # the served page can switch metrics
        assert '<strong id="metric">turns</strong>' in client.get("/?metric=turns").text


@pytest.mark.integration
def test_served_responses_carry_security_headers(live_server: str) -> None:
    import httpx

    with httpx.Client(base_url=live_server, timeout=5) as client:
        for path in ("/", "/?metric=speed", "/api/leaderboard", "/health"):
            headers = client.get(path).headers
            assert headers["x-content-type-options"] == "nosniff", path
            assert headers["x-frame-options"] == "DENY", path
            csp = headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, path
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, path
        page = client.get("/")
    script = page.text.split("<script>")[1].split("</script>")[0]
    style = page.text.split("<style>")[1].split("</style>")[0]
    csp = page.headers["content-security-policy"]
    assert f"script-src {_csp_hash(script)};" in csp and f"style-src {_csp_hash(style)};" in csp


def _csp_hash(text: str) -> str:
    import base64
    import hashlib

    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_page_carries_its_policy_and_no_other_inline_code() -> None:
    page = render_page(make_page(), metric_links=True)
    [meta] = [m for m in elements(page, "meta") if m.get("http-equiv")]
    script = page.split("<script>")[1].split("</script>")[0]
    assert f"script-src {_csp_hash(script)}" in (meta["content"] or "")
    assert page.count("<script") == 1 and page.count("<style") == 1
    tags = re.findall(r"<[a-z][^>]*>", page)
    assert not [t for t in tags if re.search(r"\s(style|on[a-z]+)=", t)]  # nothing inline else


@pytest.mark.integration
def test_unknown_metric_is_a_400_with_the_choices(live_server: str) -> None:
    import httpx

    with httpx.Client(base_url=live_server, timeout=5) as client:
        api = client.get("/api/leaderboard", params={"metric": "speed"})
        assert api.status_code == 400 and "unknown metric 'speed'" in api.json()["detail"]
        page = client.get("/", params={"metric": "<i>speed</i>"})
        assert page.status_code == 400 and "unknown metric" in page.text
        assert "<i>" not in page.text  # the echoed metric is escaped


def test_app_leaves_a_store_it_was_given_open() -> None:
    testclient = pytest.importorskip("fastapi.testclient")
    store = FakeStore(make_page())
    with testclient.TestClient(create_app(store)) as client:
        assert client.get("/health").status_code == 200
    assert not store.closed


@pytest.mark.integration
def test_serve_a_real_empty_store(tmp_path: Path) -> None:
    """``serve()`` in its own process on a real (empty) SQLite store, as the CLI runs it.

    The end-to-end test with submitted runs lives with the store's tests.
    """
    pytest.importorskip("turngym.leaderboard.store")  # needs sqlalchemy (harness extra)
    import httpx

    with socket.socket() as sock:  # a free port (uvicorn binds it itself in the child)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = "import sys; from turngym.leaderboard.web import serve; serve(sys.argv[1], port=%d)"
    child = subprocess.Popen([sys.executable, "-c", code % port, str(tmp_path / "board.db")],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            deadline = time.monotonic() + 20
            while True:
                assert child.poll() is None, child.communicate()[0].decode()
                try:
                    assert client.get("/health").json() == {"status": "ok"}
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "serve() did not start"
                    time.sleep(0.05)
            page = client.get("/")
            assert page.status_code == 200 and "No submissions yet" in page.text
            assert client.get("/api/leaderboard").json()["rows"] == []
            bad = client.get("/api/leaderboard", params={"metric": "speed"})
            assert bad.status_code == 400 and "unknown metric 'speed'" in bad.json()["detail"]
    finally:
        child.terminate()
        output = child.communicate(timeout=10)[0].decode()
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status reports it.
    assert child.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output


def test_export_a_real_empty_store(tmp_path: Path) -> None:
    store_module = pytest.importorskip("turngym.leaderboard.store")
    with store_module.LeaderboardStore(tmp_path / "board.db") as store:
        path = export_html(store, tmp_path / "site" / "index.html")
    assert "No submissions yet" in path.read_text(encoding="utf-8")


# --- A real headless browser --------------------------------------------------------------------
def _runs(driver: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr.lb-row")
    assert rows and all(row.is_displayed() for row in rows)
    return [row.get_attribute("data-run") for row in rows]


def _click(driver: Any, key: str) -> str | None:
    """Click a header of the main table; return its aria-sort afterwards."""
    from selenium.webdriver.common.by import By

    header = driver.find_element(By.CSS_SELECTOR, f'#leaderboard th[data-key="{key}"]')
    header.click()
    return header.get_attribute("aria-sort")


def _check_sorting(driver: Any) -> None:
    from selenium.webdriver.common.by import By

    assert _runs(driver) == MAIN_TABLE
    assert _click(driver, "mean") == "ascending"
    assert _runs(driver) == MAIN_TABLE[::-1]
    assert _click(driver, "mean") == "descending"
    assert _runs(driver) == MAIN_TABLE
    # Numbers sort as numbers (100 after 40), ties fall back to the rank.
    assert _click(driver, "n") == "ascending"
    assert _runs(driver) == ["oracle", "ppo-run", "random"]
    assert _click(driver, "n") == "descending"
    assert _runs(driver) == ["random", "oracle", "ppo-run"]
    assert _click(driver, f"env:{WORDLE}") == "ascending"
    assert _runs(driver) == ["random", "ppo-run", "oracle"]
    assert _click(driver, "run") == "ascending"
    assert _runs(driver) == ["oracle", "ppo-run", "random"]
    sorted_headers = driver.find_elements(By.CSS_SELECTOR, "#leaderboard th[aria-sort]")
    assert [h.get_attribute("data-key") for h in sorted_headers] == ["run"]
    # The other env set's table sorts on its own (and was left alone above).
    other = driver.find_elements(By.CSS_SELECTOR, "#leaderboard-set-2 tbody tr.lb-row")
    assert [row.get_attribute("data-run") for row in other] == ["grpo-run"]
    # The page's script and style ran under its Content-Security-Policy without a violation.
    logs = [entry["message"] for entry in driver.get_log("browser")]
    assert not [m for m in logs if "Content Security Policy" in m], logs


@pytest.mark.integration
def test_browser_sorts_the_served_page(browser: Any, live_server: str) -> None:
    browser.get(live_server + "/")
    assert browser.title == "turngym leaderboard"
    _check_sorting(browser)
    assert len(browser.find_elements("css selector", "svg.curve-chart polyline")) == 3


@pytest.mark.integration
def test_browser_sorts_the_exported_file(browser: Any, tmp_path: Path) -> None:
    path = export_html(FakeStore(make_page()), tmp_path / "board.html")
    browser.get(path.as_uri())
    _check_sorting(browser)
