"""TextWorld games (and ALFWorld's) as turngym ``TextEnv`` s (the ``textworld`` extra).

TextWorld (Côté et al., 2018, arXiv:1806.11532) compiles text adventures to Z-machine files;
``tw-make`` (shipped in the ``textworld`` wheel, with Inform 7 bundled) generates them offline::

    tw-make custom --world-size 3 --nb-objects 4 --quest-length 3 --seed 1 --output g1.z8

:class:`TextWorldEnv` plays a folder of such games. ALFWorld (Shridhar et al., 2021,
arXiv:2010.03768) ships its household games as TextWorld PDDL games (``game.tw-pddl``) under
``$ALFWORLD_DATA/json_2.1.1/{train,valid_seen,valid_unseen}``; the same class loads them when
``ALFWORLD_DATA`` is set (``textworld/ALFWorld-v0``). Only generated ``.z8`` games are tested
here: ALFWorld's data is a separate download.

* **Tasks and splits.** A task is ``{"game": path relative to the folder}``. Sub-folders named
  ``train``, ``valid``/``valid_seen``/``validation`` and ``test``/``valid_unseen`` give the
  splits (ALFWorld's layout); games elsewhere are split by the hash of their path. The seed
  picks a game of the split (``seed % count``).
* **Actions** are one of the game's *admissible commands* (listed in every observation) inside
  ``<action></action>``; anything else is invalid and never reaches the game.
* **Reward** is the change in the game's score; ``score`` is ``score / max_score``; success is
  TextWorld's ``won``. **Oracle**: the first of TextWorld's ``policy_commands`` (a walkthrough
  from the current state). **Privileged**: the walkthrough, the max score and the game path.
* **State key**: a hash of the room description, the inventory and the score (TextWorld has no
  state hash of its own; two states that look the same this way are treated as equal).
* **Snapshots and pickling** replay the commands of the episode on a fresh game (TextWorld's
  engine is a subprocess that cannot be copied; its games are deterministic).
* **Leak check**: the walkthrough written as a run of commands. TextWorld's objective text
  describes the quest in prose by design; that is the task statement, not a leak.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from turngym.core import TextEnv, Transition
from turngym.tasks import SPLITS, split_of

__all__ = ["TextWorldEnv", "find_games", "register_textworld_envs", "GAME_SUFFIXES"]

GAME_SUFFIXES: tuple[str, ...] = (".z8", ".ulx", ".tw-pddl")
"""Game files the adapter loads."""

_SPLIT_DIRS = {"train": "train", "valid": "validation", "valid_seen": "validation",
               "validation": "validation", "test": "test", "valid_unseen": "test"}  # fmt: skip


def find_games(root: str | Path) -> dict[str, list[dict[str, str]]]:
    """Game files under ``root`` as tasks grouped by split (see the module doc).

    Raises:
        ValueError: ``root`` is not a folder or holds no game file.
    """
    base = Path(root).expanduser()
    if not base.is_dir():
        raise ValueError(f"TextWorld: {str(base)!r} is not a folder of games.")
    by_split: dict[str, list[dict[str, str]]] = {name: [] for name in SPLITS}
    for path in sorted(p for p in base.rglob("*") if p.suffix in GAME_SUFFIXES):
        rel = path.relative_to(base).as_posix()
        named = [_SPLIT_DIRS[part] for part in path.relative_to(base).parts[:-1]
                 if part in _SPLIT_DIRS]  # fmt: skip
        task = {"game": rel}
        by_split[named[0] if named else split_of(task)].append(task)
    if not any(by_split.values()):
        raise ValueError(f"TextWorld: no {'/'.join(GAME_SUFFIXES)} game under {str(base)!r}; "
                         "generate some with tw-make.")  # fmt: skip
    return by_split


def register_textworld_envs() -> None:
    """Register the TextWorld ids whose data is configured.

    ``textworld/ALFWorld-v0`` if ``ALFWORLD_DATA`` is set, ``textworld/Games-v0`` if
    ``TEXTWORLD_GAMES`` names a folder of games.
    """
    import gymnasium

    alfworld = os.environ.get("ALFWORLD_DATA")
    if alfworld and "textworld/ALFWorld-v0" not in gymnasium.registry:
        gymnasium.register(id="textworld/ALFWorld-v0", max_episode_steps=50,
                           entry_point="turngym.envs.adapters.textworld:TextWorldEnv",
                           kwargs={"games_dir": str(Path(alfworld) / "json_2.1.1")})  # fmt: skip
    games = os.environ.get("TEXTWORLD_GAMES")
    if games and "textworld/Games-v0" not in gymnasium.registry:
        gymnasium.register(id="textworld/Games-v0", max_episode_steps=50,
                           entry_point="turngym.envs.adapters.textworld:TextWorldEnv",
                           kwargs={"games_dir": games})  # fmt: skip


class TextWorldEnv(TextEnv):
    """Play a folder of TextWorld games with admissible commands (see the module doc).

    Difficulty knobs: ``games_dir`` (the folder; required).
    """

    family: ClassVar[str] = "textworld"
    example_actions: ClassVar[tuple[str, ...]] = (
        "<action>look</action>",
        "<action>inventory</action>",
        "<action>go north</action>",
        "<action>go east</action>",
    )
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {"games_dir": ""}

    def __init__(self, **kwargs: Any) -> None:
        """Create the env and index the games; keyword arguments as for ``TextEnv``."""
        super().__init__(**kwargs)
        self._root = Path(self.difficulty["games_dir"]).expanduser()
        self._tasks_file = find_games(self._root)
        self._game: Any = None
        self._game_path = ""
        self.history: list[str] = []
        self.done = False
        self._first_walkthrough: list[str] = []
        self.gs: Any = None
        self.feedback = ""

    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """``games_dir`` must name a folder."""
        if not difficulty["games_dir"]:
            raise ValueError("TextWorldEnv needs games_dir=<folder of tw-make games> (or set "
                             "ALFWORLD_DATA for ALFWorld's games).")  # fmt: skip

    def generate_task(self, rng: Any, difficulty: Mapping[str, Any]) -> dict:
        """Unused: tasks come from the games folder."""
        raise NotImplementedError("TextWorldEnv draws its tasks from games_dir")

    # --- The game process ---------------------------------------------------------------------
    def _start(self, rel: str) -> Any:
        import textworld

        path = self._root / rel
        if self._game is None or self._game_path != str(path):
            if self._game is not None:
                self._game.close()
            infos = textworld.EnvInfos(admissible_commands=True, policy_commands=True, won=True,
                                       lost=True, score=True, max_score=True, description=True,
                                       inventory=True, objective=True)  # fmt: skip
            self._game, self._game_path = textworld.start(str(path), request_infos=infos), str(path)
        return self._game

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Start (or reuse) the game process and reset it."""
        rel = task.get("game")
        if not isinstance(rel, str) or not (self._root / rel).is_file():
            raise ValueError(f"TextWorld: task {dict(task)!r} names no game file under "
                             f"{str(self._root)!r}.")  # fmt: skip
        self.gs = self._start(rel).reset()
        self.history, self.done = [], False
        self.feedback = str(self.gs.feedback).strip()
        self._first_walkthrough = [str(c).lower() for c in self.gs.policy_commands or []]

    def apply(self, command: str) -> Transition:
        """Play an admissible command; reward = the change in score."""
        cmd = " ".join(command.lower().split())
        if self.done:
            return Transition(valid=False, effective=False, message="The game is over.")
        admissible = [c.lower() for c in self.gs.admissible_commands or []]
        if cmd not in admissible:
            shown = cmd if len(cmd) <= 40 else cmd[:40] + "..."
            message = f"Invalid action: {shown!r} is not an admissible command."
            return Transition(valid=False, effective=False, message=message)
        before = float(self.gs.score or 0)
        self.gs, _, done = self._game.step(cmd)
        self.history.append(cmd)
        self.done = bool(done)
        self.feedback = str(self.gs.feedback).strip()
        reward = float(self.gs.score or 0) - before
        return Transition(reward=reward, terminated=bool(done),
                          reward_components={"score": reward})  # fmt: skip

    # --- Views --------------------------------------------------------------------------------
    def instructions(self) -> str:
        """TextWorld's objective and the action rule."""
        return (f"{str(self.gs.objective).strip()}\n\nEach turn, answer with one of the admissible "
                "commands listed under the observation, inside <action></action>, e.g. "
                "<action>look</action>.")  # fmt: skip

    def render_text(self) -> str:
        """The game's feedback and the admissible commands."""
        commands = ", ".join(self.gs.admissible_commands or [])
        return f"{self.feedback}\n\nAdmissible commands: {commands}"

    def state_key(self) -> str:
        """Hash of the room description, inventory, score and end flags."""
        gs = self.gs
        blob = "\x1f".join(str(x) for x in (gs.description, gs.inventory, gs.score, gs.won,
                                             gs.lost))  # fmt: skip
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def score(self) -> float:
        """``score / max_score`` (1 once won)."""
        if self.gs is None:
            return 0.0
        if self.gs.won:
            return 1.0
        top = float(self.gs.max_score or 0)
        return float(self.gs.score or 0) / top if top > 0 else 0.0

    def privileged(self) -> dict[str, Any]:
        """The walkthrough from here, the max score and the game file."""
        return {"walkthrough": list(self.gs.policy_commands or []),
                "max_score": self.gs.max_score, "game": self.task.get("game")}  # fmt: skip

    def metrics(self) -> dict[str, Any]:
        """The game's score and whether it is won or lost."""
        return {"tw_score": self.gs.score, "won": bool(self.gs.won), "lost": bool(self.gs.lost)}

    def oracle_action(self) -> str:
        """The first command of TextWorld's walkthrough from the current state."""
        walkthrough = list(self.gs.policy_commands or [])
        return f"<action>{walkthrough[0] if walkthrough else 'look'}</action>"

    def leak_check(self, text: str) -> list[str]:
        """Flag the walkthrough from the start written as a run of 3+ commands."""
        steps = self._first_walkthrough
        lowered = " ".join(text.lower().split())
        if len(steps) >= 3 and any(sep.join(steps) in lowered for sep in (", ", "; ", " then ")):
            return ["the walkthrough appears as a sequence of commands"]
        return []

    # --- Snapshots: replay the episode's commands on a fresh game -----------------------------
    def get_state(self) -> bytes:
        """A snapshot: the task and the commands played (replayed by :meth:`set_state`)."""
        import pickle

        return pickle.dumps({"task": dict(self.task), "history": list(self.history),
                             "turn": self.turn, "rng": self.np_random.bit_generator.state,
                             "last_obs": self._last_obs})  # fmt: skip

    def set_state(self, state: bytes) -> None:
        """Restore a snapshot by resetting the game and replaying its commands."""
        import pickle

        data = pickle.loads(state)
        self.task = data["task"]
        self.load_task(self.task)
        for cmd in data["history"]:
            self.gs, _, done = self._game.step(cmd)
            self.history.append(cmd)
            self.done = bool(done)
            self.feedback = str(self.gs.feedback).strip()
        self.turn, self._last_obs = data["turn"], data["last_obs"]
        self.np_random.bit_generator.state = data["rng"]

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("_game", "gs")}
        state["_game"], state["gs"], state["_game_path"] = None, None, ""
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.task:
            history, turn, last = list(self.history), self.turn, self._last_obs
            self.load_task(self.task)
            for cmd in history:
                self.gs, _, done = self._game.step(cmd)
                self.history.append(cmd)
                self.done = bool(done)
                self.feedback = str(self.gs.feedback).strip()
            self.turn, self._last_obs = turn, last

    def close(self) -> None:
        """Stop the game process."""
        if self._game is not None:
            self._game.close()
            self._game = None
