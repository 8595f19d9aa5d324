"""OpenEnv's own server on an echo env equivalent to ``bench/Echo-v0``, for the side-by-side row.

Imported only by ``server_throughput.py --compare-openenv`` (in the server's process). It needs
OpenEnv's server package: ``openenv`` on PyPI (the package ``openenv-core`` was renamed to; its
``openenv_core`` module is a shim over ``openenv.core``). Its declared dependencies are ~110
packages (gradio, fastmcp...), none of which the server path imports, so install it as the CI
does, without them::

    pip install --no-deps openenv==0.10.0 -r tests/server/openenv-client.txt

The env does what ``bench/Echo-v0`` does per step — echo the action text into the next
observation, reward 1, end after 50 steps — in OpenEnv's idiom: pydantic ``Action`` and
``Observation`` models and a sync ``step`` (as OpenEnv's ``echo_env`` has), which its server runs
in a per-session thread. ``EchoAsync`` overrides ``step_async`` instead, which its server awaits
on the event loop (no thread hop): the faster way to write an OpenEnv env.
"""

from __future__ import annotations

import uuid
from typing import Any

from openenv.core.env_server.http_server import create_app
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, Observation, State

__all__ = ["EchoAction", "EchoObservation", "Echo", "EchoAsync", "app"]

EPISODE_STEPS = 50  # as bench/Echo-v0's registered time limit


class EchoAction(Action):
    """The agent's text, in the field turngym's text envs use."""

    message: str


class EchoObservation(Observation):
    """What the agent sees (``done``, ``reward`` and ``metadata`` come from ``Observation``)."""

    text: str = ""


class Echo(Environment):
    """Echoes the action; an episode is 50 steps."""

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self) -> None:
        """Create the env."""
        super().__init__()
        self._state = State(episode_id=None, step_count=0)

    def reset(self, seed: int | None = None, episode_id: str | None = None,
              **kwargs: Any) -> EchoObservation:  # fmt: skip
        """Start an episode."""
        self._state = State(episode_id=episode_id or uuid.uuid4().hex, step_count=0)
        return EchoObservation(text="turn 0: ", done=False, reward=None)

    def step(self, action: EchoAction, timeout_s: float | None = None,
             **kwargs: Any) -> EchoObservation:  # fmt: skip
        """Echo the action's text."""
        self._state.step_count += 1
        turn = self._state.step_count
        return EchoObservation(text=f"turn {turn}: {action.message}", reward=1.0,
                               done=turn >= EPISODE_STEPS)  # fmt: skip

    @property
    def state(self) -> State:
        """Episode id and step count."""
        return self._state


class EchoAsync(Echo):
    """The same env with ``step_async``, which OpenEnv's server awaits on its event loop."""

    async def step_async(self, action: EchoAction, timeout_s: float | None = None,
                         **kwargs: Any) -> EchoObservation:  # fmt: skip
        """Echo the action's text without a thread hop."""
        return self.step(action, timeout_s=timeout_s)


def app(env: type[Echo], max_sessions: int) -> Any:
    """OpenEnv's FastAPI app serving ``env`` to up to ``max_sessions`` WebSockets."""
    return create_app(env, EchoAction, EchoObservation, env_name="echo",
                      max_concurrent_envs=max_sessions)  # fmt: skip
