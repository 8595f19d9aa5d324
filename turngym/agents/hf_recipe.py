"""The agent recipe: the :class:`~turngym.agents.hf.HFAgent` settings saved with a checkpoint.

A trained policy is its weights plus how it was asked and decoded (temperature, stop strings,
the response prefix, the action restriction ...). ``turngym train`` writes those settings next
to the weights as :data:`RECIPE_FILE`, so ``hf:<checkpoint>`` acts as the policy did in
training. Reading one needs no torch.
"""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["RECIPE_FILE", "RECIPE_KEYS", "load_recipe"]

RECIPE_FILE = "turngym_agent.json"
"""File name of the agent recipe saved next to a checkpoint's weights."""

RECIPE_KEYS: tuple[str, ...] = (
    "temperature", "top_p", "max_new_tokens", "stop", "response_prefix", "response_suffix",
    "history", "include_instructions", "share_prefix", "allowed_actions",
)  # fmt: skip
"""The :class:`HFAgent` settings a recipe holds (every constructor option but the model,
tokenizer, seed and device)."""


def load_recipe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The recipe saved in ``path`` (:data:`RECIPE_FILE`), or ``{}`` when there is none.

    Raises:
        ValueError: The file holds keys that are not :data:`RECIPE_KEYS`.
    """
    file = os.path.join(path, RECIPE_FILE)
    if not os.path.isfile(file):
        return {}
    with open(file) as fh:
        recipe = json.load(fh)
    unknown = sorted(set(recipe) - set(RECIPE_KEYS))
    if unknown:
        raise ValueError(f"{file}: unknown recipe keys {unknown}; known: {list(RECIPE_KEYS)}")
    if "stop" in recipe:
        recipe["stop"] = tuple(recipe["stop"])
    return recipe
