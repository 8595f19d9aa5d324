"""Agents: the batched protocol, reference agents, and the name registry.

Agents are resolved from strings such as ``"random"``, ``"oracle"``, ``"minimax:4"`` or
``"replay:runs/episodes.jsonl"``: the part before the first colon names a factory in
:data:`agent_registry`, the rest is its argument. Third-party packages add factories through
the ``turngym.agents`` entry-point group (value: a function ``(arg, *, seed) -> Agent``).
"""

from __future__ import annotations

from typing import Protocol

from turngym.agents.base import ActionResult, Agent, BaseAgent, EnvAwareAgent
from turngym.agents.scripted import OracleAgent, RandomAgent, ReplayAgent, ScriptedAgent
from turngym.registry import Registry

__all__ = [
    "ActionResult",
    "Agent",
    "BaseAgent",
    "EnvAwareAgent",
    "AgentFactory",
    "OracleAgent",
    "RandomAgent",
    "ReplayAgent",
    "ScriptedAgent",
    "agent_registry",
    "make_agent",
]


class AgentFactory(Protocol):
    """Builds an agent from the argument after the colon (``None`` if there was none)."""

    def __call__(self, arg: str | None, *, seed: int) -> Agent | EnvAwareAgent:  # noqa: D102
        ...


def _random(arg: str | None, *, seed: int) -> RandomAgent:
    return RandomAgent(seed=seed)


def _oracle(arg: str | None, *, seed: int) -> OracleAgent:
    return OracleAgent()


def _minimax(arg: str | None, *, seed: int) -> Agent | EnvAwareAgent:
    from turngym.agents.opponents import MinimaxAgent

    if arg is not None and not arg.isdigit():
        raise ValueError(f"minimax takes a search depth: 'minimax' or 'minimax:4', got {arg!r}.")
    return MinimaxAgent(depth=int(arg) if arg else None, seed=seed)


def _negotiator(arg: str | None, *, seed: int) -> Agent | EnvAwareAgent:
    from turngym.agents.opponents import NegotiatorAgent

    return NegotiatorAgent(seed=seed)


def _replay(arg: str | None, *, seed: int) -> ReplayAgent:
    if not arg:
        raise ValueError("replay needs a file: use 'replay:path/to/episodes.jsonl'.")
    return ReplayAgent(arg)


def _hf_options(kind: str, query: str) -> dict:
    """Generation overrides from an ``hf:``/``tiny:`` spec query (``?temperature=0&...``)."""
    from turngym.agents.openai_spec import bool_option, optional_int, query_options

    def actions(text: str) -> tuple[str, ...] | None:
        return None if text.lower() in {"none", "free"} else tuple(text.split(","))

    table = {"temperature": float, "top_p": float, "max_new_tokens": int, "stop": str,
             "response_prefix": str, "response_suffix": str, "history": optional_int,
             "include_instructions": bool_option, "share_prefix": bool_option,
             "allowed_actions": actions, "device": str}  # fmt: skip
    options = query_options(kind, query, table)
    if "stop" in options:
        options["stop"] = tuple(options["stop"])
    return options


def _hf(arg: str | None, *, seed: int) -> Agent:
    if not arg:
        raise ValueError("hf needs a model: use 'hf:path/to/model' (a local dir or hub name).")
    from turngym.agents.hf import HFAgent  # torch and transformers: the `train` extra

    path, _, query = arg.partition("?")
    # A checkpoint written by `turngym train` carries its recipe; the query overrides it.
    try:
        return HFAgent.from_pretrained(path, seed=seed, **_hf_options("hf", query))
    except OSError as err:  # transformers' "not a local folder and not on the hub" message
        raise ValueError(
            f"hf:{path}: no model there: not a local model directory, and not in the local "
            "Hugging Face cache (turngym never downloads); pass the directory of a saved "
            "model, e.g. the checkpoint/ folder of a `turngym train` run"
        ) from err


def _tiny(arg: str | None, *, seed: int) -> Agent:
    if not arg:
        raise ValueError("tiny needs an env: use 'tiny:frozenlake' or 'tiny:turngym/Sokoban-v0'.")
    import os

    from turngym.agents.hf import HFAgent  # torch and transformers: the `train` extra
    from turngym.agents.tiny import build_tiny

    source, _, query = arg.partition("?")
    options = _hf_options("tiny", query)
    if os.path.isdir(source):  # a trained tiny model (a `turngym train` checkpoint)
        return HFAgent.from_pretrained(source, seed=seed, **options)
    model, tokenizer = build_tiny(source, seed=seed)
    # The prefix opens the action tag so that even an untrained model answers in the grammar;
    # a Llama attends to every earlier token, so the shared instructions are encoded once.
    defaults = dict(response_prefix="<action>", stop=("</action>",), max_new_tokens=8,
                    history=0, share_prefix=True)  # fmt: skip
    return HFAgent(model, tokenizer, seed=seed, **{**defaults, **options})


def _openai(arg: str | None, *, seed: int) -> Agent:
    if not arg:
        raise ValueError(
            "openai needs a model: use 'openai:<model>@<base url>', e.g. "
            "'openai:gpt-4o-mini@https://api.openai.com/v1'."
        )
    from turngym.agents.openai import OpenAIAgent  # httpx: the `harness` extra

    return OpenAIAgent.from_spec(arg, seed=seed)


agent_registry: Registry[AgentFactory] = Registry("agent", group="turngym.agents")
"""Agent factories by name."""
agent_registry.register("random", _random)
agent_registry.register("oracle", _oracle)
agent_registry.register("replay", _replay)
agent_registry.register("minimax", _minimax)  # board games (TicTacToe, ConnectFour)
agent_registry.register("negotiator", _negotiator)  # DealOrNoDeal
agent_registry.register("hf", _hf)
agent_registry.register("tiny", _tiny)
agent_registry.register("openai", _openai)


def make_agent(spec: str, *, seed: int = 0) -> Agent | EnvAwareAgent:
    """Build an agent from a spec string ``"name"`` or ``"name:argument"``.

    Raises:
        turngym.registry.UnknownNameError: No factory has that name (with suggestions).

    Example:
        >>> type(make_agent("random", seed=1)).__name__
        'RandomAgent'
    """
    name, sep, arg = spec.partition(":")
    factory = agent_registry.get(name)
    return factory(arg if sep else None, seed=seed)
