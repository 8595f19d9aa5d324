"""SearchQA: Search-R1-style multi-hop QA over a fictional, BM25-searched corpus (issue 6).

Search-R1 (Jin et al., 2025) format and rewards over HotpotQA-style (Yang et al., 2018)
questions; :mod:`~turngym.envs.search.world` builds the knowledge base,
:mod:`~turngym.envs.search.questions` the questions and metrics,
:mod:`~turngym.envs.search.corpus` the index and the ``/retrieve`` function.
"""

from __future__ import annotations

from turngym.envs.search.corpus import search_r1_retrieve
from turngym.envs.search.env import SearchQA

__all__ = ["SearchQA", "search_r1_retrieve"]
