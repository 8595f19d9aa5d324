"""`turngym eval` with the openai agent against a real OpenAI-compatible server on loopback."""

import io

import pytest

pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("torch")

from openai_server import serve_openai  # noqa: E402

from turngym.cli import main  # noqa: E402
from turngym.evals.results import load_episodes, load_results  # noqa: E402


@pytest.fixture(scope="module")
def server():
    with serve_openai("turngym/FrozenLake-v0", require_key="sk-test") as srv:
        yield srv


@pytest.mark.integration
def test_eval_with_the_openai_agent_writes_the_same_run_directory(tmp_path, server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    spec = f"openai:tiny@{server.base_url}?max_tokens=6&max_concurrency=4"
    out = tmp_path / "run"
    argv = ["eval", "turngym/FrozenLake-v0", "--agents", spec, "random", "--episodes", "4",
            "--seeds", "0", "1", "--out", str(out)]
    buf = io.StringIO()
    assert main(argv, stdout=buf) == 0
    assert f"| turngym/FrozenLake-v0 | {spec} | success |" in buf.getvalue()
    results = load_results(out)
    remote = next(e for e in results.entries if e.agent == spec)
    assert remote.metrics["success"].n == 8 and remote.agent_config["model"] == "tiny"
    assert "sk-test" not in (out / "results.json").read_text()
    assert "sk-test" not in (out / "run.json").read_text()
    episodes = [e for e in load_episodes(out) if e["agent"] == spec]
    assert len(episodes) == 8 and all(e["turns"] for e in episodes)
    # Resuming asks the server for nothing more.
    before = len(server.requests)
    buf = io.StringIO()
    assert main(argv, stdout=buf) == 0 and "0 to run" in buf.getvalue()
    assert len(server.requests) == before
    table = io.StringIO()
    assert main(["table", str(out)], stdout=table) == 0 and spec in table.getvalue()


@pytest.mark.integration
def test_eval_survives_a_failing_and_rate_limiting_server(tmp_path, server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    server.reset(fail_first=2, rate_limit_every=3, require_key="sk-test")
    try:
        spec = f"openai:tiny@{server.base_url}?max_tokens=6&backoff=0.01"
        argv = ["eval", "turngym/FrozenLake-v0", "--agents", spec, "--episodes", "3",
                "--out", str(tmp_path / "run")]
        assert main(argv, stdout=io.StringIO()) == 0
        assert {r.status for r in server.requests} >= {200, 429, 500}
        assert load_results(tmp_path / "run").entries[0].metrics["success"].n == 3
    finally:
        server.reset(require_key="sk-test")


@pytest.mark.integration
def test_eval_without_the_key_fails_cleanly_and_keeps_nothing_half_written(tmp_path, server,
                                                                           monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    spec = f"openai:tiny@{server.base_url}?max_tokens=6"
    argv = ["eval", "turngym/FrozenLake-v0", "--agents", spec, "--episodes", "2",
            "--out", str(tmp_path / "run")]
    assert main(argv, stdout=io.StringIO()) == 1
    err = capsys.readouterr().err
    assert "OPENAI_API_KEY" in err and "rerun the same command" in err
    assert not (tmp_path / "run" / "results.json").exists()
