"""Shop: a WebShop-like env (Yao et al., 2022) over a synthetic catalogue with BM25 search.

Modules: :mod:`~turngym.envs.shop.vocab` (word lists), :mod:`~turngym.envs.shop.catalog`
(catalogue and goals), :mod:`~turngym.envs.shop.reward` (WebShop's reward formula),
:mod:`~turngym.envs.shop.pages` (page state and rendering), :mod:`~turngym.envs.shop.env`
(the :class:`Shop` env).
"""

from __future__ import annotations

from turngym.envs.shop.env import Shop

__all__ = ["Shop"]
