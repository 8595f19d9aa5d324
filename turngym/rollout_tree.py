"""Tree rollouts: groups whose episodes branch from env snapshots at chosen turns.

``collect_tree(env, agent, tasks, group_size, branches=...)`` first plays ``group_size`` root
episodes per task in lockstep (like :func:`turngym.rollout.collect`), snapshotting the env
before every action. It then picks turns to branch at, restores the env there and plays one
new episode from each: the new episode *shares the real prefix* (the very same turns, token
traces included) and differs from the branch turn on, because the agent samples a new action
there. Branching runs in ``rounds``; each round sees the episodes of the earlier ones, so
choices can follow what the tree has learnt so far (Monte-Carlo tree search over turns, as
in DeepSearch, Wu et al. 2025, arXiv 2509.25454, and Tree-GRPO, Ji et al. 2025, arXiv
2509.21240).

Where to branch (``select``):

* ``"uniform"`` — any turn of any episode of the task, uniformly;
* ``"uncertainty"`` — the turns where the policy was least sure of the action it sampled
  (highest mean negative log-probability of the action's tokens, from the TokenTrace);
* ``"uct"`` — the state maximising ``V(s) + c * sqrt(ln(N(parent) + 1) / N(s))``, with
  ``N`` the episodes through a state and ``V`` the mean score of those episodes
  (``value_fn=None``) or a critic's estimate (``value_fn``).

Snapshots are ``env.unwrapped.get_state()``/``set_state()``: bytes for in-process envs, and
for served envs (:class:`turngym.server.client.RemoteEnv`) handles of the server's snapshots
(the machinery behind the server's ``fork``), so trees grow on remote envs unchanged.

Every turn records its tree node in ``Turn.info["tree_node"]``; the copies of a shared prefix
keep their original's node, which is how ``tree_grpo`` finds siblings. Branch episodes also
carry ``Episode.metrics["tree_parent"]`` (member index of the episode branched from) and
``["tree_branch_turn"]``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from turngym._rollout_common import describe_error
from turngym.agents.base import Agent, EnvAwareAgent
from turngym.rollout_single import EnvSource, _Collector, _EpisodeSpec, _Slot
from turngym.trainers.credit.tree_grpo import TREE_NODE
from turngym.types import Episode, Group

__all__ = ["collect_tree", "TREE_NODE", "TREE_PARENT", "TREE_BRANCH_TURN"]

TREE_PARENT = "tree_parent"
"""``Episode.metrics`` key: member index (in its group) of the episode a branch copies."""
TREE_BRANCH_TURN = "tree_branch_turn"
"""``Episode.metrics`` key: the turn at which a branch leaves its parent."""

Select = Literal["uniform", "uncertainty", "uct"]
ValueFn = Callable[[Sequence[Episode]], list[np.ndarray]]
"""Maps episodes to the value of the state of each of their turns (e.g. a critic's)."""


@dataclasses.dataclass(frozen=True, slots=True)
class _BranchSpec(_EpisodeSpec):
    parent: int = 0  # member index of the parent episode
    turn: int = 0  # the branch turn: turns [0, turn) are shared


class _TreeCollector(_Collector):
    """The lockstep engine plus snapshots before each step and branch episodes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.snapshots: dict[str, list[Any]] = {}  # episode id -> state before each turn
        self.instructions: dict[str, str] = {}
        self.members = [self.group_size] * len(self.seeds)
        self.branch_of: dict[tuple[int, int], tuple[int, int]] = {}

    def fill(self) -> None:
        """Start queued episodes; branch specs restore a snapshot instead of a fresh reset."""
        roots = type(self.queue)(s for s in self.queue if not isinstance(s, _BranchSpec))
        branches = [s for s in self.queue if isinstance(s, _BranchSpec)]
        self.queue = roots
        super().fill()
        while branches and len(self.live) < self.concurrency:
            self._start_branch(branches.pop(0))
        self.queue.extend(branches)

    def _start_branch(self, spec: _BranchSpec) -> None:
        parent = self.results[(spec.group, spec.parent)]
        env = self.free_envs.pop() if self.free_envs else self.make_env()
        slot = _Slot(env=env, spec=spec, started=time.monotonic())
        try:  # reset first: wrappers and the env's RNG exist only after a reset
            env.reset(seed=spec.seed, options=dict(self.reset_options))
            base: Any = env.unwrapped  # duck-typed snapshots (TextEnv, RemoteEnv, ...)
            base.set_state(self.snapshots[parent.episode_id][spec.turn])
        except Exception as err:
            self._finish(slot, error=describe_error(err), env_broken=True)
            return
        prefix = parent.turns[: spec.turn]
        here = parent.turns[spec.turn]
        slot.observation, slot.state_key = here.observation, here.state_key
        slot.instructions = self.instructions.get(parent.episode_id, "")
        slot.task_id, slot.privileged = parent.task_id, dict(parent.privileged)
        slot.history = tuple((t.observation, t.action) for t in prefix)
        slot.turns = list(prefix)
        self.snapshots[spec.episode_id] = list(self.snapshots[parent.episode_id][: spec.turn])
        self.live.append(slot)

    def _step_all(self, actions: Sequence[Any]) -> list[Any]:
        for slot in self.live:  # the state each action is taken from
            states = self.snapshots.setdefault(slot.spec.episode_id, [])
            if len(states) == len(slot.turns):
                base: Any = slot.env.unwrapped  # duck-typed: see _start_branch
                try:
                    states.append(base.get_state())
                except Exception as err:  # an env without snapshots cannot be branched
                    raise RuntimeError(
                        f"tree rollouts need env snapshots: {type(slot.env.unwrapped).__name__}"
                        f".get_state() failed ({err}); turngym.TextEnv subclasses have them."
                    ) from err
        return super()._step_all(actions)

    def _record(self, slot: _Slot, action: Any, outcome: tuple) -> bool:
        over = super()._record(slot, action, outcome)
        turn = slot.turns[-1]
        node = f"{slot.spec.episode_id}#{turn.index}"
        slot.turns[-1] = dataclasses.replace(turn, info={**turn.info, TREE_NODE: node})
        self.instructions.setdefault(slot.spec.episode_id, slot.instructions)
        return over

    def branch(self, group: int, parent: int, turn: int) -> None:
        """Queue a new episode of ``group`` that copies ``parent`` up to ``turn``."""
        member = self.members[group]
        self.members[group] += 1
        base = self.results[(group, 0)]
        group_id = base.episode_id.rsplit("/", 1)[0]
        self.queue.append(_BranchSpec(group, member, base.seed, group_id,
                                      f"{group_id}/{member}", parent, turn))  # fmt: skip
        self.branch_of[(group, member)] = (parent, turn)
        self.total += 1

    def groups(self) -> list[Group]:
        """Every group with its roots and branches (branches tagged in their metrics)."""
        size = self.group_size
        out = []
        for g, (group, members) in enumerate(zip(super().groups(), self.members, strict=True)):
            extra = []
            for m in range(size, members):
                ep = self.results[(g, m)]
                parent, turn = self.branch_of[(g, m)]
                metrics = {**ep.metrics, TREE_PARENT: float(parent), TREE_BRANCH_TURN: float(turn)}
                extra.append(dataclasses.replace(ep, task_id=group.task_id, metrics=metrics))
            out.append(Group(group.group_id, group.task_id, group.episodes + tuple(extra)))
        return out


def _run(collector: _Collector, agent: Agent | EnvAwareAgent) -> None:
    collector.fill()
    while not collector.done:
        if isinstance(agent, EnvAwareAgent):
            actions = agent.act_batch_with_envs(collector.conversations(), collector.envs())
        else:
            actions = agent.act_batch(collector.conversations())
        collector.apply(actions)
        collector.fill()


def _candidates(collector: _TreeCollector, group: int) -> list[tuple[int, int, str]]:
    """Branchable (member, turn, state node) of a group, one per distinct state."""
    seen: dict[str, tuple[int, int, str]] = {}
    for m in range(collector.members[group]):
        ep = collector.results.get((group, m))
        if ep is None or ep.error is not None:
            continue
        for t in range(len(ep.turns)):
            state = ep.turns[t - 1].info.get(TREE_NODE) if t else f"root{group}"
            seen.setdefault(f"{state}>{t}", (m, t, str(state)))
    return list(seen.values())


def _uncertainty(ep: Episode, t: int) -> float:
    trace = ep.turns[t].trace
    if trace is None or not trace.logprobs:
        return 0.0
    return -float(np.mean(trace.logprobs))


def _choose(
    collector: _TreeCollector, group: int, k: int, select: Select, c: float,
    rng: np.random.Generator, value_fn: ValueFn | None,
) -> list[tuple[int, int]]:  # fmt: skip
    """Pick ``k`` (member, turn) branch points of one group (distinct states first)."""
    cands = _candidates(collector, group)
    if not cands:
        return []
    if select == "uniform":
        order = rng.permutation(len(cands))
    else:
        eps = [collector.results[(group, m)] for m, _, _ in cands]
        if select == "uncertainty":
            pairs = zip(eps, cands, strict=True)
            score = np.array([_uncertainty(ep, t) for ep, (_, t, _) in pairs])
        elif select == "uct":
            score = _uct(collector, group, cands, c, value_fn)
        else:
            raise ValueError(f"select must be uniform, uncertainty or uct, got {select!r}")
        # Highest score first; random tie-break so equal scores do not always pick turn 0.
        order = np.lexsort((rng.random(len(cands)), -score))
    chosen = [cands[i][:2] for i in order[:k]]
    while len(chosen) < k:  # more branches than states: revisit the best ones
        chosen.append(chosen[len(chosen) % max(1, len(order))])
    return chosen


def _uct(collector: _TreeCollector, group: int, cands: list[tuple[int, int, str]], c: float,
         value_fn: ValueFn | None) -> np.ndarray:  # fmt: skip
    members = [collector.results[(group, m)] for m in range(collector.members[group])]
    through: dict[str, list[float]] = {}
    values: dict[str, float] = {}
    estimates = value_fn(members) if value_fn else [None] * len(members)
    for ep, estimate in zip(members, estimates, strict=True):
        states = [f"root{group}"] + [str(t.info.get(TREE_NODE)) for t in ep.turns[:-1]]
        for t, state in enumerate(states):  # every state node the episode passes through
            if t == 0 or state != states[t - 1]:
                through.setdefault(state, []).append(ep.outcome)
            if estimate is not None:
                values.setdefault(state, float(estimate[t]))
    out = []
    for m, t, state in cands:
        parent = str(members[m].turns[t - 2].info.get(TREE_NODE)) if t > 1 else f"root{group}"
        n, n_parent = len(through.get(state, [])), len(through.get(parent, []))
        v = values.get(state, float(np.mean(through[state])) if through.get(state) else 0.0)
        out.append(v + c * np.sqrt(np.log(n_parent + 1.0) / max(n, 1)))
    return np.array(out)


def collect_tree(
    env: EnvSource,
    agent: Agent | EnvAwareAgent,
    tasks: int | Sequence[int],
    group_size: int = 2,
    *,
    branches: int = 2,
    rounds: int = 1,
    select: Select = "uncertainty",
    c: float = 1.0,
    value_fn: ValueFn | None = None,
    seed: int = 0,
    split: str = "test",
    options: dict[str, Any] | None = None,
    max_turns: int | None = None,
    round_index: int = 0,
    workers: int = 0,
) -> list[Group]:
    """Play ``group_size`` root episodes per task, then ``branches`` more branched from them.

    Args:
        env: A registered env id (``ENV_ID@URL`` for a served env) or an env factory.
        agent: The batched policy (branches are sampled by the same agent).
        tasks: Number of tasks or explicit seeds.
        group_size: Root episodes per task.
        branches: Extra episodes per task, spread evenly over ``rounds``.
        rounds: Selection rounds; each sees all earlier episodes.
        select: ``"uniform"``, ``"uncertainty"`` or ``"uct"`` (module docstring).
        c: UCT exploration constant.
        value_fn: For ``"uct"``: the value of each turn's state per episode (e.g. a
            critic's); default: the mean score of the episodes through the state.
        seed: Seeds the branch choices.
        split: Split of the tasks.
        options: Reset options.
        max_turns: Turn cap (prefix turns count).
        round_index: Sampling round (part of group ids).
        workers: Env-stepping threads.

    Returns:
        One Group per task: ``group_size + branches`` episodes, roots first.

    Example:
        >>> from turngym.agents import RandomAgent
        >>> groups = collect_tree("turngym/FrozenLake-v0", RandomAgent(seed=0), 1, 2,
        ...                       branches=2, select="uniform")
        >>> len(groups[0].episodes)
        4
    """
    if branches < 0 or rounds < 1:
        raise ValueError(f"branches must be >= 0 and rounds >= 1, got {branches}, {rounds}")
    collector = _TreeCollector(
        env, tasks, group_size, split=split, options=options, env_kwargs=None,
        max_turns=max_turns, max_concurrent=None, episode_timeout=None, workers=workers,
        round_index=round_index,
    )  # fmt: skip
    rng = np.random.default_rng([seed, round_index, 5])
    try:
        _run(collector, agent)
        per_round = [branches // rounds + (r < branches % rounds) for r in range(rounds)]
        for k in per_round:
            for g in range(len(collector.seeds)):
                for member, turn in _choose(collector, g, k, select, c, rng, value_fn):
                    collector.branch(g, member, turn)
            _run(collector, agent)
        return collector.groups()
    finally:
        collector.close()
