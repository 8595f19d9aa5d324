"""Search-R1's ``POST /retrieve`` on a real loopback server serving SearchQA (issue 9, item 4)."""

from __future__ import annotations

import gymnasium
import httpx
import pytest

from ._loopback import serve_app

if "test/SearchQASmall-v0" not in gymnasium.registry:
    gymnasium.register(id="test/SearchQASmall-v0", entry_point="turngym.envs.search.env:SearchQA",
                       max_episode_steps=8, kwargs={"corpus_size": 800})  # fmt: skip


@pytest.mark.integration
def test_retrieve_over_loopback(tmp_path, monkeypatch):
    monkeypatch.setenv("TURNGYM_CACHE", str(tmp_path))
    with serve_app(["test/SearchQASmall-v0"]) as server:
        request = {"queries": ["film directed by", "founded"], "topk": 2, "return_scores": True}
        reply = httpx.post(f"{server.url}/retrieve", json=request, timeout=30)
        assert reply.status_code == 200
        result = reply.json()["result"]
        assert len(result) == 2 and all(len(hits) == 2 for hits in result)
        doc = result[0][0]["document"]
        assert set(doc) == {"id", "contents"} and doc["contents"].startswith('"')
        assert result[0][0]["score"] >= result[0][1]["score"] > 0
        bad = httpx.post(f"{server.url}/retrieve", json={"queries": 3}, timeout=30)
        assert bad.status_code == 422 and "queries" in bad.json()["detail"]


@pytest.mark.integration
def test_no_retrieve_without_searchqa(counter_id):
    with serve_app([counter_id]) as server:
        assert httpx.post(f"{server.url}/retrieve", json={"queries": []}).status_code in (404, 405)
