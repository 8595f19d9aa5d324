"""turngym envs in verl's multi-turn rollout: an agent loop registered as ``turngym`` (verl 0.9.1).

verl's extension point for multi-turn interaction is its agent-loop registry
(``verl.experimental.agent_loop.register``): a dataset row whose ``agent_name`` is
``turngym`` is played by :class:`TurngymAgentLoop`. The loop builds the env the row names,
resets it with the row's seed, and alternates: the policy generates (through verl's LLM
server client, so vLLM or SGLang on GPUs), the decoded text is the env's action, the env's
next observation is appended as a user message with verl's Continuous Token builder (model
tokens ``response_mask = 1``, env tokens 0). It stops when the episode terminates or is
truncated, at the turn limit, or when the response budget (``rollout.response_length``) is
spent.

The output row carries the env's return as ``reward_score`` (so verl needs no reward
function), and in ``extra_fields`` (which verl copies into the batch's non-tensor fields):
``turn_scores`` (per-turn rewards), ``anchor_obs`` (per-turn state keys, for GiGPO),
``outcome`` (the env's score) and ``success`` -- what :mod:`turngym.adapters.verl.advantage`
turns back into a TurnBatch.

Dataset rows: :func:`dataset_rows` writes them (``agent_name``, a placeholder ``prompt`` for
verl's dataset filters, and ``extra_info["turngym"]`` = env id, seed, split, options).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import uuid4

from verl.experimental.agent_loop.agent_loop import (
    AgentLoopBase,
    AgentLoopMetrics,
    AgentLoopOutput,
    register,
)
from verl.utils.profiler import simple_timer

from turngym.core import INSTRUCTIONS, SCORE, STATE_KEY, SUCCESS
from turngym.registry import make

__all__ = ["AGENT_NAME", "TurngymAgentLoop", "dataset_rows"]

AGENT_NAME = "turngym"
"""The ``agent_name`` of dataset rows this loop plays."""


def dataset_rows(
    env_id: str,
    seeds: Iterable[int],
    *,
    split: str = "train",
    options: Mapping[str, Any] | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    max_turns: int | None = None,
) -> list[dict[str, Any]]:
    """Rows of a verl dataset, one per task seed, played by :class:`TurngymAgentLoop`.

    Write them with ``pandas.DataFrame(rows).to_parquet(path)`` and point verl's
    ``data.train_files`` at the file.

    Example:
        >>> dataset_rows("turngym/FrozenLake-v0", [3])[0]["extra_info"]["turngym"]["seed"]
        3
    """
    spec = {"env_id": env_id, "split": split, "options": dict(options or {}),
            "env_kwargs": dict(env_kwargs or {}), "max_turns": max_turns}  # fmt: skip
    return [
        {
            "data_source": env_id,
            "agent_name": AGENT_NAME,
            # verl's dataset filters prompts by length; the loop builds its own from the env.
            "prompt": [{"role": "user", "content": f"{env_id} task {seed}"}],
            "extra_info": {"turngym": {**spec, "seed": int(seed)}},
        }
        for seed in seeds
    ]


@register(AGENT_NAME)
class TurngymAgentLoop(AgentLoopBase):
    """Plays one turngym episode per dataset row against verl's LLM server."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("tools", None)  # verl hands every loop its tool list; envs are the tools here
        super().__init__(*args, **kwargs)
        self.response_length = int(self.rollout_config.response_length)

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        """Play the episode named by ``kwargs["extra_info"]["turngym"]``; return verl's row."""
        spec = _spec(kwargs)
        env = make(spec["env_id"], disable_env_checker=True, **spec["env_kwargs"])
        try:
            return await self._play(env, spec, sampling_params)
        finally:
            env.close()

    async def _play(self, env: Any, spec: dict[str, Any], sampling_params: dict[str, Any]
                    ) -> AgentLoopOutput:  # fmt: skip
        loop = asyncio.get_running_loop()
        options = {"split": spec["split"], **spec["options"]}
        seed = spec["seed"]
        obs, info = await loop.run_in_executor(None, lambda: env.reset(seed=seed, options=options))
        max_turns = spec["max_turns"] or (env.spec.max_episode_steps if env.spec else None) or 100
        messages = [{"role": "system", "content": str(info.get(INSTRUCTIONS, ""))},
                    {"role": "user", "content": obs}]  # fmt: skip
        ids = await self.ct_build_initial_tokens(messages)
        mask: list[int] = []
        logprobs: list[float] = []  # stays empty unless the server returns log-probabilities
        rewards: list[float] = []
        anchors = [info.get(STATE_KEY)]
        metrics: dict[str, Any] = {}
        request_id = uuid4().hex
        for _ in range(max_turns):
            with simple_timer("generate_sequences", metrics):
                out = await self.server_manager.generate(
                    request_id=request_id, prompt_ids=ids, sampling_params=sampling_params
                )
            merged, mask, merged_logprobs = await self.ct_merge_assistant_token(
                ids, out.token_ids, mask, logprobs if (logprobs or out.log_probs) else None,
                assistant_logprobs=out.log_probs or None,
            )  # fmt: skip
            ids, logprobs = merged.token_ids, merged_logprobs or logprobs
            action = self.tokenizer.decode(out.token_ids, skip_special_tokens=True)
            with simple_timer("tool_calls", metrics):
                obs, reward, terminated, truncated, info = await loop.run_in_executor(
                    None, env.step, action
                )
            rewards.append(float(reward))
            messages.append({"role": "assistant", "content": action})
            previous = list(messages)  # verl merges what was appended after the assistant turn
            messages.append({"role": "user", "content": obs})
            if (
                terminated
                or truncated
                or len(rewards) >= max_turns
                or len(mask) >= self.response_length
            ):
                break
            merged, new_mask, merged_logprobs = await self.ct_merge_context_msg(
                previous, messages, ids, mask, logprobs or None
            )
            if len(new_mask) >= self.response_length:  # no room for the env's reply
                break
            ids, mask, logprobs = merged.token_ids, new_mask, merged_logprobs or logprobs
            anchors.append(info.get(STATE_KEY))
        return self._output(ids, mask, logprobs, rewards, anchors[: len(rewards)], info, metrics)

    def _output(self, ids: list[int], mask: list[int], logprobs: list[float],
                rewards: list[float], anchors: list[Any], info: dict[str, Any],
                metrics: dict[str, Any]) -> AgentLoopOutput:  # fmt: skip
        n = self.response_length
        success = bool(info.get(SUCCESS, False))
        # A response cut at verl's response_length keeps only the turns whose model tokens
        # start inside it: per-turn fields must match the mask's runs of 1s.
        kept = sum(1 for i, m in enumerate(mask[:n]) if m and (i == 0 or not mask[i - 1]))
        return AgentLoopOutput(
            prompt_ids=ids[: len(ids) - len(mask)],
            response_ids=ids[len(ids) - len(mask) :][:n],
            response_mask=mask[:n],
            response_logprobs=logprobs[:n] if logprobs else None,
            reward_score=float(sum(rewards)),
            num_turns=2 * len(rewards) + 1,
            metrics=AgentLoopMetrics(**metrics),
            extra_fields={
                "turn_scores": rewards[:kept],
                "anchor_obs": anchors[:kept],
                "success": success,
                "outcome": float(info.get(SCORE, float(success))),
            },  # fmt: skip
        )


def _spec(row: Mapping[str, Any]) -> dict[str, Any]:
    extra = row.get("extra_info") or {}
    spec = extra.get("turngym") if isinstance(extra, Mapping) else None
    if not isinstance(spec, Mapping) or "env_id" not in spec:
        raise ValueError(
            "a turngym agent-loop row needs extra_info['turngym'] = {'env_id', 'seed', ...}; "
            "build rows with turngym.adapters.verl.dataset_rows"
        )
    return {"seed": 0, "split": "train", "options": {}, "env_kwargs": {}, "max_turns": None,
            **dict(spec)}  # fmt: skip
