"""GUINav: operate a procedurally generated app through its accessibility tree.

GUI agents such as those evaluated on AndroidWorld (Rawles et al., 2024, arXiv:2405.14573) see
the current screen as a tree of UI elements (role, label, state) and act on element indices:
click, type, scroll, go back. This env keeps that interface with apps drawn by
:mod:`turngym.envs.gui.apps`: a tree of settings screens with cross-links, distractor branches
and dead ends (leaf screens with nothing relevant), switches and text fields, and buttons that
stay disabled until a switch on their screen is set. The agent sees only the current screen,
and only ``viewport`` of its widgets at a time (partial observability); the goal names the
settings to change (or the screen to open), never where they are.

Actions, inside ``<action></action>``: ``click N``, ``type N TEXT`` (replaces a text field's
value), ``scroll down``, ``scroll up``, ``back`` (to the parent screen; on Home it does
nothing). ``N`` is a widget index shown on the current screen. Clicking a widget that is not
visible, typing into something that is not a text field, or any other command is invalid
(nothing changes).

**Reward.** ``reward_mode="sparse"`` (default): 1 when every goal holds (the episode ends).
``"shaped"``: additionally ``goal_bonus`` for each goal that becomes true and minus it for one
that becomes false again, so the return of a success is ``1 + goals * goal_bonus`` at most
minus any undoing. ``step_penalty`` (default 0) is added every turn.

**State key**: the screen, the scroll page and every widget value. **Privileged**: the
shortest plan from the start and its length (BFS), the path of screens to each goal, and the
goals met so far. **Leak check**: the start plan (as a run of actions) and any goal path
written out as ``A > B > C`` must not appear in text the agent sees.

Example:
    >>> env = GUINav()
    >>> obs, info = env.reset(seed=0, options={"split": "test"})
    >>> obs.splitlines()[0].startswith("Screen: Home")
    True
    >>> for _ in range(40):
    ...     obs, reward, done, _, info = env.step(env.oracle_action())
    ...     if done:
    ...         break
    >>> info["success"], reward
    (True, 1.0)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from turngym.core import TextEnv, Transition, check_int_knobs
from turngym.envs.gui.apps import App, generate_app, goal_met, solve

__all__ = ["GUINav"]

_INT_KNOBS: Mapping[str, tuple[int, int, str]] = {
    "screens": (1, 40, "screens in the app, Home included"),
    "branching": (1, 6, "most child screens one screen links to"),
    "widgets": (0, 10, "settings/text widgets per screen besides navigation"),
    "viewport": (2, 30, "widgets visible at once"),
    "goals": (1, 4, "settings to change (and maybe a screen to open)"),
    "locks": (0, 6, "buttons disabled until a switch on their screen is set"),
    "cross_links": (0, 20, "extra buttons linking screens across branches"),
}
_GOAL_KINDS = ("toggle", "type", "open")
_COMMAND = re.compile(r"^(click|type|scroll|back)\b\s*(.*)$", re.IGNORECASE | re.DOTALL)


class GUINav(TextEnv):
    """Reach settings in a generated app by clicking, typing, scrolling and going back.

    Difficulty knobs: ``screens`` (1-40), ``branching`` (1-6), ``widgets`` (0-10 per screen),
    ``viewport`` (2-30 visible widgets), ``goals`` (1-4), ``goal_kinds`` (subset of
    ``toggle``/``type``/``open``), ``locks`` (0-6 locked buttons), ``cross_links`` (0-20),
    ``reward_mode`` (``sparse``/``shaped``), ``goal_bonus``, ``step_penalty``. Levels: 0 = 6
    screens, one goal, no locks; 1 = 15 screens, one lock (default); 2 = 20 screens, two goals,
    two locks; 3 = 30 screens, three goals, three locks. By default each screen has four
    widgets besides navigation and a viewport of 5.
    """

    family: ClassVar[str] = "guinav"
    example_actions: ClassVar[tuple[str, ...]] = (
        "<action>click 1</action>",
        "<action>click 2</action>",
        "<action>click 3</action>",
        "<action>type 2 hello</action>",
        "<action>scroll down</action>",
        "<action>scroll up</action>",
        "<action>back</action>",
    )
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {
        "screens": 15,
        "branching": 3,
        "widgets": 4,
        "viewport": 5,
        "goals": 1,
        "goal_kinds": ["toggle", "type", "open"],
        "locks": 1,
        "cross_links": 2,
        "reward_mode": "sparse",
        "goal_bonus": 0.2,
        "step_penalty": 0.0,
    }
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {
        0: {"screens": 6, "goals": 1, "locks": 0, "cross_links": 1},
        1: {"screens": 15, "goals": 1, "locks": 1, "cross_links": 2},
        2: {"screens": 20, "goals": 2, "locks": 2, "cross_links": 3},
        3: {"screens": 30, "goals": 3, "locks": 3, "cross_links": 4, "viewport": 5},
    }

    def __init__(self, **kwargs: Any) -> None:
        """Create the env; keyword arguments are those of :class:`~turngym.core.TextEnv`."""
        super().__init__(**kwargs)
        self.app: App | None = None
        self.screen = 0
        self.page = 0
        self.values: list[Any] = []
        self._plan: list[str] = []
        self._oracle: dict[str, str] = {}

    # --- Tasks --------------------------------------------------------------------------------
    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the knob and what it accepts."""
        check_int_knobs("GUINav", difficulty, _INT_KNOBS)
        kinds = difficulty["goal_kinds"]
        if not isinstance(kinds, list | tuple) or not kinds or set(kinds) - set(_GOAL_KINDS):
            raise ValueError(f"GUINav: goal_kinds={kinds!r}; use a non-empty list of "
                             f"{list(_GOAL_KINDS)}.")  # fmt: skip
        if difficulty["reward_mode"] not in ("sparse", "shaped"):
            raise ValueError(f"GUINav: reward_mode={difficulty['reward_mode']!r}; use "
                             "'sparse' or 'shaped'.")  # fmt: skip
        for name in ("goal_bonus", "step_penalty"):
            value = difficulty[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or abs(value) > 10:
                raise ValueError(f"GUINav: {name}={value!r}; use a number in [-10, 10].")

    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """Draw an app and its goals (:func:`~turngym.envs.gui.apps.generate_app`)."""
        return generate_app(rng, difficulty).to_task()

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Parse the app, reset the UI to Home and solve the task once."""
        self.app = App.from_task(task)
        self.screen, self.page, self.values = 0, 0, self.app.initial_values()
        plan = solve(self.app, 0, 0, self.values)
        if plan is None:
            raise ValueError("GUINav: the goals of this task cannot be reached.")
        self._plan = plan
        self._oracle = {}
        self._cache_plan(plan)

    # --- Play ---------------------------------------------------------------------------------
    def apply(self, command: str) -> Transition:
        """Apply ``click N``, ``type N TEXT``, ``scroll up|down`` or ``back``."""
        assert self.app is not None, "call reset() first"
        match = _COMMAND.match(command.strip())
        if match is None:
            return self._invalid(f"{command[:40]!r} is not a command")
        verb, rest = match.group(1).lower(), match.group(2).strip()
        before = self._met()
        if verb == "back":
            outcome = self._back() if not rest else self._invalid("back takes no argument")
        elif verb == "scroll":
            outcome = self._scroll(rest.lower())
        else:
            outcome = self._click_or_type(verb, rest)
        if not outcome.valid:
            return outcome
        return self._reward(outcome, before)

    def _reward(self, outcome: Transition, before: int) -> Transition:
        app = self.app
        assert app is not None
        d = self.episode_difficulty
        parts = {"step": float(d["step_penalty"]), "goals": 0.0, "success": 0.0}
        after = self._met()
        if d["reward_mode"] == "shaped":
            parts["goals"] = float(d["goal_bonus"]) * (after - before)
        solved = after == len(app.goals)
        if solved:
            parts["success"] = 1.0
        message = outcome.message + (" Task complete." if solved else "")
        return Transition(reward=sum(parts.values()), terminated=solved, message=message.strip(),
                          reward_components=parts, effective=outcome.effective)  # fmt: skip

    def _visible(self) -> list[int]:
        app = self.app
        assert app is not None
        ids = app.screens[self.screen].widgets
        v = app.viewport
        return list(ids[self.page * v : (self.page + 1) * v])

    def _click_or_type(self, verb: str, rest: str) -> Transition:
        app = self.app
        assert app is not None
        head, _, text = rest.partition(" ")
        if not head.isdigit():
            return self._invalid(f"{verb} needs a widget number, e.g. `{verb} 2`")
        local = int(head)
        ids = app.screens[self.screen].widgets
        if not 1 <= local <= len(ids) or ids[local - 1] not in self._visible():
            return self._invalid(f"there is no widget [{local}] on the screen; scroll to find more")
        w_id = ids[local - 1]
        w = app.widgets[w_id]
        if verb == "type":
            if w.role != "textbox":
                return self._invalid(f"[{local}] is a {w.role}, not a text field")
            text = text.strip()
            if not text or len(text) > 60:
                return self._invalid("type needs 1 to 60 characters of text after the number")
            changed = self.values[w_id] != text
            self.values[w_id] = text
            return Transition(message=f"Typed into {w.label!r}.", effective=changed)
        if text:
            return self._invalid("click takes only a widget number")
        if w.role == "button":
            if not app.enabled(w_id, self.values):
                return Transition(message=f"{w.label!r} is disabled.", effective=False)
            self.screen, self.page = w.target, 0
            return Transition(message=f"Opened {app.screens[w.target].title!r}.")
        if w.role == "switch":
            self.values[w_id] = not self.values[w_id]
            state = "on" if self.values[w_id] else "off"
            return Transition(message=f"{w.label!r} is now {state}.")
        return Transition(message="Nothing happened.", effective=False)

    def _scroll(self, direction: str) -> Transition:
        app = self.app
        assert app is not None
        pages = max(1, -(-len(app.screens[self.screen].widgets) // app.viewport))
        if direction not in ("up", "down"):
            return self._invalid("scroll takes `up` or `down`")
        target = self.page + (1 if direction == "down" else -1)
        if not 0 <= target < pages:
            return Transition(message=f"Cannot scroll {direction} any further.", effective=False)
        self.page = target
        return Transition(message=f"Scrolled {direction}.")

    def _back(self) -> Transition:
        app = self.app
        assert app is not None
        parent = app.screens[self.screen].parent
        if parent < 0:
            return Transition(message="Already on the Home screen.", effective=False)
        self.screen, self.page = parent, 0
        return Transition(message=f"Back to {app.screens[parent].title!r}.")

    def _invalid(self, reason: str) -> Transition:
        return Transition(valid=False, effective=False, message=f"Invalid action: {reason}. "
                          "Use click N, type N TEXT, scroll up, scroll down or back.")  # fmt: skip

    def _met(self) -> int:
        app = self.app
        assert app is not None
        return sum(goal_met(app, g, self.screen, self.values) for g in app.goals)

    # --- Views --------------------------------------------------------------------------------
    def _goal_text(self, goal: Mapping[str, Any]) -> str:
        app = self.app
        assert app is not None
        if goal["kind"] == "open":
            return f"finish on the {app.screens[int(goal['screen'])].title!r} screen"
        label = app.widgets[int(goal["widget"])].label
        if goal["kind"] == "toggle":
            return f"turn {'on' if goal['value'] else 'off'} {label!r}"
        return f"set {label!r} to {goal['value']!r}"

    def instructions(self) -> str:
        """The app, the goals, the action grammar and an example; never where things are."""
        app = self.app
        assert app is not None
        goals = "; ".join(self._goal_text(g) for g in app.goals)
        return "\n".join([
            f"You are operating the {app.name} app. Each turn you see the current screen as an "
            "accessibility tree: widgets with a number, a role, a label and a state.",
            f"Your task: {goals}. The task ends as soon as all of it holds.",
            "Actions: `click N` (open a button's screen, flip a switch), `type N TEXT` (replace a "
            "text field's value), `scroll down` / `scroll up` (see more widgets of the screen), "
            "`back` (go to the parent screen). Disabled buttons do nothing until they are "
            "enabled by a setting on the same screen.",
            "Answer with one action inside <action></action>, e.g. <action>click 2</action>.",
        ])  # fmt: skip

    def render_text(self) -> str:
        """The current screen as an accessibility tree (only the visible widgets)."""
        app = self.app
        assert app is not None
        screen = app.screens[self.screen]
        ids = screen.widgets
        v = app.viewport
        pages = max(1, -(-len(ids) // v))
        lines = [f"Screen: {screen.title}  (page {self.page + 1} of {pages})",
                 f'window "{screen.title}"']  # fmt: skip
        if not ids:
            lines.append("  text \"This screen is empty\"")
        for local in range(self.page * v + 1, min(len(ids), (self.page + 1) * v) + 1):
            lines.append("  " + self._widget_line(local, ids[local - 1]))
        if self.page + 1 < pages:
            lines.append(f"  ... {len(ids) - (self.page + 1) * v} more below (scroll down)")
        if self.page > 0:
            lines.append("  ... more above (scroll up)")
        return "\n".join(lines)

    def _widget_line(self, local: int, w_id: int) -> str:
        app = self.app
        assert app is not None
        w, value = app.widgets[w_id], self.values[w_id]
        if w.role == "button":
            state = "" if app.enabled(w_id, self.values) else " disabled"
            return f'[{local}] button "{w.label}"{state}'
        if w.role == "switch":
            return f'[{local}] switch "{w.label}" {"on" if value else "off"}'
        if w.role == "textbox":
            return f'[{local}] textbox "{w.label}" value="{value}"'
        return f'[{local}] text "{w.label}"'

    def state_key(self) -> str:
        """``screen|page|values``: the screen, scroll page and every widget value."""
        values = ",".join("1" if v is True else "0" if v is False else str(v or "")
                          for v in self.values)  # fmt: skip
        return f"{self.screen}|{self.page}|{values}"

    def score(self) -> float:
        """1.0 when every goal holds, else 0.0."""
        return 1.0 if self.app is not None and self._met() == len(self.app.goals) else 0.0

    def privileged(self) -> dict[str, Any]:
        """Start plan and length, screen paths to the goals, goals met now."""
        app = self.app
        assert app is not None
        return {
            "optimal_plan": list(self._plan),
            "optimal_plan_length": len(self._plan),
            "goal_paths": [self._path_to(g) for g in app.goals],
            "goals_met": [goal_met(app, g, self.screen, self.values) for g in app.goals],
        }

    def metrics(self) -> dict[str, Any]:
        """Goals met, goal count, the optimal plan length, and the current screen's depth."""
        app = self.app
        assert app is not None
        return {"goals_met": self._met(), "goals": len(app.goals),
                "optimal_plan_length": len(self._plan), "screens": len(app.screens)}  # fmt: skip

    def _path_to(self, goal: Mapping[str, Any]) -> list[str]:
        app = self.app
        assert app is not None
        if goal["kind"] == "open":
            screen = int(goal["screen"])
        else:
            widget = int(goal["widget"])
            screen = next(s for s, sc in enumerate(app.screens) if widget in sc.widgets)
        path = []
        while screen >= 0:
            path.append(app.screens[screen].title)
            screen = app.screens[screen].parent
        return path[::-1]

    # --- Oracle and leak check ----------------------------------------------------------------
    def oracle_action(self) -> str:
        """The next action of a shortest plan from the current state (BFS, cached)."""
        key = self.state_key()
        if key not in self._oracle:
            assert self.app is not None
            plan = solve(self.app, self.screen, self.page, self.values) or ["back"]
            self._cache_plan(plan)
        return f"<action>{self._oracle.get(key, 'back')}</action>"

    def _cache_plan(self, plan: list[str]) -> None:
        """Map each state along ``plan`` to its next action (replaying on the live state)."""
        saved = (self.screen, self.page, list(self.values))
        for action in plan:
            self._oracle[self.state_key()] = action
            self.apply(action)
        self.screen, self.page, self.values = saved

    def leak_check(self, text: str) -> list[str]:
        """Flag the start plan written as a run of actions, or a goal's screen path ``A > B``."""
        problems = []
        lowered = " ".join(text.lower().split())
        if len(self._plan) >= 3:
            for sep in (", ", "; ", " -> ", " then "):
                if sep.join(self._plan).lower() in lowered:
                    problems.append("the optimal plan appears as a sequence of actions")
                    break
        for path in self.privileged()["goal_paths"]:
            if len(path) >= 3 and any(
                sep.join(path).lower() in lowered for sep in (" > ", " / ", " -> ", " → ")
            ):
                problems.append("a goal's screen path appears in the text")
                break
        return problems
