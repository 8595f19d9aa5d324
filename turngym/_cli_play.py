"""``turngym play``: an env in the terminal, played by a person or by a named agent.

Plain words are wrapped in the env's action tag; ``:reset`` replays the task, ``:privileged``
shows the ground truth the agent never sees, ``:quit`` stops. When an episode ends, a person
may play the next task of the split.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

import turngym
from turngym.agents import EnvAwareAgent, make_agent
from turngym.core import INSTRUCTIONS, PRIVILEGED
from turngym.types import Conversation

__all__ = ["cmd_play"]

_PLAY_HELP = (
    "Type an action (plain words are wrapped in the env's tag), or :reset, :privileged, :quit."
)


def cmd_play(args: argparse.Namespace, reset_options: dict[str, Any], out: TextIO,
             stdin: TextIO) -> int:  # fmt: skip
    """Run ``turngym play``: ``reset_options`` are the parsed ``--level``/``--difficulty``."""
    env = turngym.make(args.env_id)
    tag = getattr(env.unwrapped, "action_tag", "action")
    agent = None if args.agent == "human" else make_agent(args.agent, seed=args.seed)
    options = {"split": args.split, **reset_options}
    seed = args.seed
    obs, info = env.reset(seed=seed, options=options)
    print(info.get(INSTRUCTIONS, ""), f"\n{_PLAY_HELP}\n\n{obs}", sep="", file=out)
    history: tuple[tuple[str, str], ...] = ()
    turn, total = 0, 0.0
    while True:
        privileged = info.get(PRIVILEGED, {})
        if agent is None:
            print("> ", end="", file=out, flush=True)
            line = stdin.readline()
            if not line or line.strip() in {":q", ":quit"}:
                return 0
            line = line.rstrip("\n")
            if line == ":reset":  # the same task again, from its start
                obs, info = env.reset(seed=seed, options=options)
                turn, total, history = 0, 0.0, ()
                print(obs, file=out)
                continue
            if line == ":privileged":
                print(json.dumps(privileged, indent=2, default=str), file=out)
                continue
            action = line if "<" in line else f"<{tag}>{line}</{tag}>"
        else:
            instructions = str(info.get(INSTRUCTIONS, ""))
            conversation = Conversation(instructions, history, obs, episode_id=f"play/{seed}")
            action = _agent_action(agent, env, conversation)
            print(f"> {action}", file=out)
        history = (*history, (obs, action))
        obs, reward, terminated, truncated, step_info = env.step(action)
        info = {**info, **step_info}  # instructions (reset only) stay for the agent's prompts
        turn, total = turn + 1, total + float(reward)
        status = " [terminated]" if terminated else " [truncated]" if truncated else ""
        print(
            f"{obs}\n(turn {turn}, reward {float(reward):+.2f}, return {total:+.2f}){status}",
            file=out,
        )
        if (terminated or truncated) and (agent is not None or not _ask_again(out, stdin)):
            return 0
        if terminated or truncated:  # "play again" is the next task of the split
            seed += 1
            obs, info = env.reset(seed=seed, options=options)
            turn, total, history = 0, 0.0, ()
            print(f"New task (seed {seed}).\n{info.get(INSTRUCTIONS, '')}\n\n{obs}", file=out)


def _agent_action(agent: Any, env: Any, conversation: Conversation) -> str:
    if isinstance(agent, EnvAwareAgent):
        return agent.act_batch_with_envs([conversation], [env])[0].text
    return agent.act_batch([conversation])[0].text


def _ask_again(out: TextIO, stdin: TextIO) -> bool:
    print("Episode over. Play again? [y/N] ", end="", file=out, flush=True)
    return stdin.readline().strip().lower() in {"y", "yes"}
