"""Household: ALFWorld-like text household tasks on procedurally generated homes.

ALFWorld (Shridhar et al., 2021) puts an agent in a simulated home and asks for one of six
tasks: put an object somewhere, optionally after cleaning, heating or cooling it, look at an
object under a desk lamp, or put two objects somewhere. verl-agent/GiGPO (Feng et al., 2025)
train on it with the admissible actions listed in each observation, a 50-turn limit, and step
groups formed by identical anchor states. Its game files cannot be downloaded here,
so this env regenerates the setting from scratch (docs/environments.md#household):
our own houses, rules (:mod:`~turngym.envs.household.world`), wording, and a planner oracle
(:mod:`~turngym.envs.household.planner`).

Example:
    >>> import gymnasium, turngym.envs
    >>> env = gymnasium.make("turngym/Household-v0")
    >>> task = {"rooms": ["kitchen"], "start": 0,
    ...         "receptacles": [["countertop 1", 0], ["microwave 1", 0]],
    ...         "objects": [["egg 1", "countertop 1"]],
    ...         "goal": {"type": "heat", "object": "egg", "target": "countertop"}}
    >>> obs, info = env.reset(options={"task": task})
    >>> print(obs)
    Your task: heat up an egg and leave it on a countertop.
    You stand in the middle of the kitchen. Around the kitchen you see countertop 1 and microwave 1.
    You are carrying nothing.
    Admissible actions: look | inventory | go to countertop 1 | go to microwave 1
    >>> info["privileged"]["expert_plan"][:3]
    ['go to countertop 1', 'take egg 1 from countertop 1', 'go to microwave 1']
    >>> for command in info["privileged"]["expert_plan"]:
    ...     obs, reward, terminated, *_ = env.step(f"<action>{command}</action>")
    >>> reward, terminated
    (1.0, True)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from turngym.core import TextEnv, Transition, check_int_knobs
from turngym.envs.household.generate import check_task, generate_task, required_receptacles
from turngym.envs.household.planner import goal_met, goal_progress, make_plan, next_command
from turngym.envs.household.vocab import TASK_TYPES, plural, prep
from turngym.envs.household.world import World

__all__ = ["Household", "goal_sentence"]

_INT_KNOBS: Mapping[str, tuple[int, int, str]] = {
    "rooms": (1, 4, "rooms in the house (kitchen, livingroom, bedroom, bathroom)"),
    "receptacles": (7, 40, "receptacles in the whole house"),
    "distractors": (0, 40, "objects that play no part in the goal"),
}
_TEMPLATES = {
    "pick": "find {a} {obj} and leave it {prep} a {target}",
    "clean": "wash {a} {obj} and leave it {prep} a {target}",
    "heat": "heat up {a} {obj} and leave it {prep} a {target}",
    "cool": "chill {a} {obj} and leave it {prep} a {target}",
    "examine": "hold {a} {obj} in the light of a switched-on desklamp",
    "pick_two": "bring two {objs} and leave both {prep} a {target}",
}


def goal_sentence(goal: Mapping[str, Any]) -> str:
    """Our own wording of a goal, e.g. ``"wash a mug and leave it in a cabinet"``."""
    obj, target = goal["object"], goal["target"]
    return _TEMPLATES[goal["type"]].format(
        a="an" if obj[0] in "aeiou" else "a",
        obj=obj,
        objs=plural(obj),
        target=target,
        prep=prep(target) if target else "",
    )


class Household(TextEnv):
    """Text household tasks (ALFWorld's six types) with admissible actions and a planner oracle.

    The agent starts in the middle of a room and sees only what is where it stands: the
    contents of a receptacle it is at (once opened, if it opens). Each observation ends with
    the admissible actions. Commands: ``look``, ``inventory``, ``go to X`` (a receptacle of
    this room, or another room), ``open X``, ``close X``, ``take O from R``,
    ``put O in/on R``, ``clean O with sinkbasin N``, ``heat O with microwave N``,
    ``cool O with fridge N``, ``use desklamp N``, ``examine X``. A command that does not
    apply is invalid (``action_valid`` False), changes nothing and says why. Meeting the goal
    pays 1 and ends the episode (verl-agent reports ``10 * won``; scale outside the env).

    Difficulty knobs: ``rooms`` (1-4; ALFWorld has one), ``receptacles`` (7-40, at least the
    rooms' required fixtures), ``distractors`` (0-40 objects unrelated to the goal) and
    ``task_types`` (a non-empty subset of :data:`~turngym.envs.household.vocab.TASK_TYPES`).
    Levels: 0 = 1 room / 9 receptacles / 3 distractors; 1 = 1 / 14 / 8 (default);
    2 = 2 / 20 / 12; 3 = 3 / 26 / 16; 4 = 4 / 34 / 22.

    State key: the canonical world state (where the agent is, what it holds, which
    receptacles are open, every object's place and state), hashed; the turn count and the
    text history are left out, so the episodes of a group share keys whenever their worlds
    coincide (GiGPO's step groups).

    Privileged info: ``goal`` (the goal spec), ``expert_plan`` (the planner's commands from
    the start) and ``plan_length``, and ``remaining_plan`` from the current state. Leak check:
    a text leaks if it names where a goal object starts (``take O from R``) before the agent
    has seen that object, or spells out three or more consecutive expert commands.
    """

    family: ClassVar[str] = "household"
    example_actions: ClassVar[tuple[str, ...]] = tuple(
        f"<action>{c}</action>"
        for c in (
            "look", "inventory", "go to countertop 1", "go to cabinet 1", "open cabinet 1",
            "go to fridge 1", "open fridge 1", "go to drawer 1", "open drawer 1",
            "go to sinkbasin 1", "go to microwave 1", "go to sidetable 1", "go to kitchen",
        )
    )  # fmt: skip
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {
        "rooms": 1,
        "receptacles": 14,
        "distractors": 8,
        "task_types": list(TASK_TYPES),
    }
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {
        level: {"rooms": r, "receptacles": n, "distractors": d}
        for level, (r, n, d) in enumerate(((1, 9, 3), (1, 14, 8), (2, 20, 12), (3, 26, 16),
                                           (4, 34, 22)))
    }  # fmt: skip

    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the knob and what it accepts."""
        check_int_knobs("Household", difficulty, _INT_KNOBS)
        need = required_receptacles(int(difficulty["rooms"]))
        if difficulty["receptacles"] < need:
            raise ValueError(
                f"Household: receptacles={difficulty['receptacles']} is too few for "
                f"rooms={difficulty['rooms']}; use at least {need}."
            )
        types = difficulty["task_types"]
        if (isinstance(types, str) or not isinstance(types, list | tuple) or not types
                or not set(types) <= set(TASK_TYPES)):  # fmt: skip
            raise ValueError(
                f"Household: task_types={types!r} is invalid; use a non-empty list drawn "
                f"from {list(TASK_TYPES)}."
            )

    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """Draw a house and a goal (see :func:`~turngym.envs.household.generate.generate_task`)."""
        return generate_task(rng, difficulty)

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Validate the task, build the world and plan from the start."""
        check_task(task)
        self.world = World(task)
        self.goal = dict(task["goal"])
        self.won = False
        self.seen: set[str] = set()
        self._look()
        self.expert_plan = make_plan(self.world, self.goal)
        self._plan_cache: tuple[str, list[str]] = ("", [])

    def _look(self) -> None:
        """Remember the objects the agent can see now (for the leak check)."""
        at = self.world.at
        if at is not None and self.world.reachable(at):
            self.seen.update(self.world.contents[at])

    # --- Play ---------------------------------------------------------------------------------
    def apply(self, command: str) -> Transition:
        """Run one command through the world; meeting the goal pays 1 and ends the episode."""
        if self.won:
            return Transition(
                terminated=True, effective=False, message="The task is already done; call reset()."
            )
        valid, effective, message = self.world.execute(command)
        if not valid:
            return Transition(valid=False, effective=False, message=message)
        self._look()
        if goal_met(self.world, self.goal):
            self.won = True
            return Transition(
                reward=1.0,
                terminated=True,
                reward_components={"goal": 1.0},
                message=f"{message} Task complete!",
            )
        return Transition(effective=effective, message=message)

    def remaining_plan(self) -> list[str]:
        """The planner's commands from the current state (cached per state key)."""
        key = self.state_key()
        if self._plan_cache[0] != key:
            self._plan_cache = (key, make_plan(self.world, self.goal))
        return self._plan_cache[1]

    # --- Views --------------------------------------------------------------------------------
    def instructions(self) -> str:
        """The task, the command grammar and one example."""
        return "\n".join([
            "You are a helper in a house. Your task: " + goal_sentence(self.goal) + ".",
            "You only see what is where you stand; closed cabinets, drawers, fridges, safes "
            "and microwaves must be opened to see inside. You can carry one object at a time.",
            "Commands: look | inventory | go to X (a receptacle in this room, or another "
            "room) | open X | close X | take O from R | put O in/on R | clean O with "
            "sinkbasin N | heat O with microwave N | cool O with fridge N | use desklamp N | "
            "examine X. Name things with their number, as in the admissible actions listed "
            "after each observation.",
            "Finishing the task gives reward 1 and ends the episode.",
            "Answer with one command in action tags, e.g. <action>go to countertop 1</action>",
        ])  # fmt: skip

    def render_text(self) -> str:
        """The task, where the agent is and what it sees, its hand, the admissible actions."""
        world = self.world
        return (
            f"Your task: {goal_sentence(self.goal)}.\n{world.describe_place()}\n"
            f"{world.describe_hand()}\nAdmissible actions: {' | '.join(world.admissible())}"
        )

    def admissible_actions(self) -> list[str]:
        """The commands that are valid now (also listed in every observation)."""
        return self.world.admissible()

    def state_key(self) -> str:
        """``"<place>|<held>|<digest of the full world state>"``."""
        world = self.world
        digest = hashlib.blake2b(world.key().encode(), digest_size=8).hexdigest()
        place = world.rooms[world.room] if world.at is None else world.at
        return f"{place}|{world.held or '-'}|{digest}"

    def score(self) -> float:
        """1.0 once the goal holds, else 0.0."""
        return 1.0 if self.won else 0.0

    def privileged(self) -> dict[str, Any]:
        """The goal spec, the expert plan from the start and the plan from here."""
        return {
            "goal": dict(self.goal),
            "goal_text": goal_sentence(self.goal),
            "expert_plan": list(self.expert_plan),
            "plan_length": len(self.expert_plan),
            "remaining_plan": list(self.remaining_plan()),
        }

    def metrics(self) -> dict[str, Any]:
        """Goal type, expert plan length, goal-condition progress, admissible-action count."""
        return {
            "task_type": self.goal["type"],
            "plan_length": len(self.expert_plan),
            "goal_progress": goal_progress(self.world, self.goal),
        }

    def oracle_action(self) -> str:
        """The planner's next command from the current state."""
        command = next_command(self.world, self.goal)
        return f"<action>{command or 'look'}</action>"

    def leak_check(self, text: str) -> list[str]:
        """Flag unseen goal-object places and spelled-out expert plans (class docstring)."""
        problems = []
        for command in self.expert_plan:
            if command.startswith("take "):
                obj = command[5:].split(" from ", 1)[0]
                if obj not in self.seen and command in text:
                    problems.append(f"the text tells where the unseen {obj} is: {command!r}")
        plan = self.expert_plan
        for sep in (", ", "; ", "\n", " then "):
            for i in range(max(0, len(plan) - 2)):
                if sep.join(plan[i : i + 3]) in text:
                    problems.append(f"the text spells out the expert plan: {plan[i : i + 3]}")
                    return problems
        return problems
