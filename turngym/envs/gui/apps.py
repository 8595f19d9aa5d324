"""Procedural apps for GUINav: screens, widgets, goals, and a breadth-first solver.

An *app* is a tree of screens rooted at ``Home`` (each screen's ``back`` leads to its parent,
Android's "up" navigation) plus a few cross-links between branches. Every screen holds an
ordered list of widgets with an accessibility role:

* ``button``: opens another screen; it may be *locked*: disabled until a switch on the same
  screen has a given state (the "enable advanced options" pattern);
* ``switch``: a boolean setting, toggled by a click;
* ``textbox``: a text setting, set by typing;
* ``text``: static, decorative text.

Only a window of ``viewport`` widgets is visible; ``scroll`` moves it a page at a time. Goals
are conjunctions of ``{"kind": "toggle", "widget", "value"}``, ``{"kind": "type", "widget",
"value"}`` and at most one ``{"kind": "open", "screen"}`` (the final screen). The layout
follows the accessibility-tree observations of AndroidWorld (Rawles et al., 2024,
arXiv:2405.14573), where agents act on element indices of the current screen only.

The solver (:func:`solve`) is a BFS over (screen, scroll page, values of the widgets that
matter: goal widgets and lock switches). Other widgets never help reach a goal, so leaving
them out keeps the search small without losing optimality: its plans are shortest in actions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["App", "Widget", "Screen", "generate_app", "solve", "goal_met", "ROLES"]

ROLES: tuple[str, ...] = ("button", "switch", "textbox", "text")
"""The widget roles, as rendered in the accessibility tree."""

_APP_NAMES = ("Nimbus", "Quill", "Harbor", "Lumen", "Cobalt", "Fable", "Orbit", "Pike",
              "Sable", "Tundra", "Vesper", "Willow")  # fmt: skip
_SCREEN_NAMES = (
    "Settings", "Display", "Sound", "Notifications", "Privacy", "Security", "Accounts",
    "Storage", "Battery", "Network", "Wi-Fi", "Bluetooth", "Location", "Language", "Keyboard",
    "Accessibility", "About", "Updates", "Backup", "Profile", "Payments", "Subscriptions",
    "Help", "Feedback", "Advanced", "Developer options", "Permissions", "Data usage", "Themes",
    "Fonts", "Wallpaper", "Ringtones", "Do not disturb", "Calendar", "Contacts", "Sync",
    "Camera", "Photos", "Downloads", "Cloud", "Family", "Parental controls", "Devices",
    "Printing", "Shortcuts", "Gestures", "Date and time", "Region", "Reset", "Diagnostics",
)  # fmt: skip
_SWITCH_WORDS = (
    "Dark mode", "Auto-rotate", "Airplane mode", "Battery saver", "Auto sync", "Night light",
    "Vibrate on tap", "Show previews", "Location history", "Two-factor login", "Backup on Wi-Fi",
    "Autoplay videos", "Haptic feedback", "Large text", "High contrast", "Mono audio",
    "Auto updates", "Crash reports", "Usage stats", "Smart replies", "Read receipts",
    "Save data", "Offline mode", "Beta features", "Quiet hours", "Sleep timer", "Live captions",
    "Screen lock", "Face unlock", "Guest mode",
)  # fmt: skip
_TEXT_WORDS = (
    "Device name", "Nickname", "Email address", "Server address", "Display name", "Status",
    "Signature", "Home city", "Proxy host", "Backup label", "Hotspot name", "Recovery phone",
)  # fmt: skip
_STATIC = ("No new items", "Version 4.2.1", "Last checked today", "Nothing to show here",
           "Managed by your organisation", "Learn more in Help")  # fmt: skip
_LOCK_WORDS = ("Enable advanced options", "Unlock expert settings", "Show hidden settings",
               "Allow changes")  # fmt: skip
_VALUE_WORDS = ("orion", "maple", "delta", "juniper", "atlas", "ember", "koi", "nova", "quartz",
                "raven", "sierra", "tango")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Widget:
    """One widget of an app.

    Attributes:
        role: One of :data:`ROLES`.
        label: The accessible name shown in the tree.
        value: Initial value of a switch (bool) or text field (str); ``None`` otherwise.
        target: The screen a button opens (``-1`` for other roles).
        lock: ``(switch widget index, required value)`` enabling a button, or ``None``.
    """

    role: str
    label: str
    value: Any = None
    target: int = -1
    lock: tuple[int, bool] | None = None


@dataclass(frozen=True, slots=True)
class Screen:
    """A screen: its title, tree parent (-1 for Home) and widget indices (app-global)."""

    title: str
    parent: int
    widgets: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class App:
    """A whole app: screens, widgets (indexed globally), goals and the viewport size."""

    name: str
    screens: tuple[Screen, ...]
    widgets: tuple[Widget, ...]
    goals: tuple[Mapping[str, Any], ...]
    viewport: int

    def to_task(self) -> dict[str, Any]:
        """The JSON task dict (the inverse of :meth:`from_task`)."""
        return {
            "app": self.name,
            "viewport": self.viewport,
            "screens": [
                {"title": s.title, "parent": s.parent, "widgets": list(s.widgets)}
                for s in self.screens
            ],
            "widgets": [
                {"role": w.role, "label": w.label, "value": w.value, "target": w.target,
                 "lock": None if w.lock is None else list(w.lock)}
                for w in self.widgets
            ],  # fmt: skip
            "goals": [dict(g) for g in self.goals],
        }

    @classmethod
    def from_task(cls, task: Mapping[str, Any]) -> App:
        """Parse and validate a task dict.

        Raises:
            ValueError: A missing key, a bad role, a dangling index or an unreachable goal.
        """
        try:
            widgets = tuple(
                Widget(str(w["role"]), str(w["label"]), w.get("value"), int(w.get("target", -1)),
                       None if w.get("lock") is None else (int(w["lock"][0]), bool(w["lock"][1])))
                for w in task["widgets"]
            )  # fmt: skip
            screens = tuple(
                Screen(str(s["title"]), int(s["parent"]), tuple(int(i) for i in s["widgets"]))
                for s in task["screens"]
            )
            app = cls(str(task.get("app", "App")), screens, widgets,
                      tuple(dict(g) for g in task["goals"]), int(task["viewport"]))  # fmt: skip
        except (KeyError, TypeError, IndexError, ValueError) as err:
            raise ValueError(
                "A GUINav task needs 'screens' [{title, parent, widgets}], 'widgets' [{role, "
                "label, value, target, lock}], 'goals' and 'viewport' " f"({err!r})."
            ) from err
        app._validate()
        return app

    def _validate(self) -> None:
        n, m = len(self.screens), len(self.widgets)
        if n < 1 or self.screens[0].parent != -1 or self.viewport < 1:
            raise ValueError("GUINav: screen 0 must be Home (parent -1) and viewport >= 1.")
        for s in self.screens[1:]:
            if not 0 <= s.parent < n:
                raise ValueError(f"GUINav: screen {s.title!r} has no valid parent.")
        for s in self.screens:
            if any(not 0 <= i < m for i in s.widgets):
                raise ValueError(f"GUINav: screen {s.title!r} names a widget that does not exist.")
        for w in self.widgets:
            if w.role not in ROLES or (w.role == "button" and not 0 <= w.target < n):
                raise ValueError(f"GUINav: widget {w.label!r} has role {w.role!r}/bad target.")
            if w.lock is not None and self.widgets[w.lock[0]].role != "switch":
                raise ValueError(f"GUINav: the lock of {w.label!r} is not a switch.")
        if not self.goals:
            raise ValueError("GUINav: a task needs at least one goal.")
        for g in self.goals:
            kind = g.get("kind")
            ok = (kind == "open" and 0 <= int(g.get("screen", -1)) < n) or (
                kind in ("toggle", "type") and 0 <= int(g.get("widget", -1)) < m
            )
            if not ok:
                raise ValueError(f"GUINav: malformed goal {dict(g)!r}.")

    def initial_values(self) -> list[Any]:
        """Widget values at the start (``None`` for buttons and static text)."""
        return [w.value for w in self.widgets]

    def enabled(self, widget: int, values: Sequence[Any]) -> bool:
        """Whether a (button) widget is enabled under ``values``."""
        lock = self.widgets[widget].lock
        return lock is None or bool(values[lock[0]]) == lock[1]


def goal_met(app: App, goal: Mapping[str, Any], screen: int, values: Sequence[Any]) -> bool:
    """Whether one goal holds in the state ``(screen, values)``."""
    if goal["kind"] == "open":
        return screen == int(goal["screen"])
    return values[int(goal["widget"])] == goal["value"]


# --- Solver ----------------------------------------------------------------------------------
def _relevant(app: App) -> tuple[int, ...]:
    """Widgets whose values the solver tracks: goal widgets and lock switches."""
    ids = {int(g["widget"]) for g in app.goals if g["kind"] != "open"}
    ids |= {w.lock[0] for w in app.widgets if w.lock is not None}
    return tuple(sorted(ids))


def _pages(app: App, screen: int) -> int:
    count = len(app.screens[screen].widgets)
    return max(1, -(-count // app.viewport))


def _successors(
    app: App, state: tuple, relevant: tuple[int, ...], values: list[Any]
) -> list[tuple[str, tuple]]:
    """``(action, next state)`` for the actions that can matter from ``state``.

    ``values`` is scratch space (the untracked widgets keep their current values).
    """
    return list(_expand(app, state, relevant, values))


def _expand(app: App, state: tuple, relevant: tuple[int, ...], values: list[Any]) -> Any:
    screen, page, tracked = state
    for i, idx in enumerate(relevant):
        values[idx] = tracked[i]
    ids = app.screens[screen].widgets
    visible = ids[page * app.viewport : (page + 1) * app.viewport]
    for local, w_id in enumerate(visible, start=page * app.viewport + 1):
        w = app.widgets[w_id]
        if w.role == "button" and app.enabled(w_id, values):
            yield f"click {local}", (w.target, 0, tracked)
        elif w.role == "switch" and w_id in relevant:
            pos = relevant.index(w_id)
            yield f"click {local}", (screen, page, (*tracked[:pos], not tracked[pos],
                                                    *tracked[pos + 1 :]))  # fmt: skip
        elif w.role == "textbox" and w_id in relevant:
            pos = relevant.index(w_id)
            for g in app.goals:
                if g["kind"] == "type" and int(g["widget"]) == w_id and tracked[pos] != g["value"]:
                    new = (*tracked[:pos], g["value"], *tracked[pos + 1 :])
                    yield f"type {local} {g['value']}", (screen, page, new)
    if page + 1 < _pages(app, screen):
        yield "scroll down", (screen, page + 1, tracked)
    if page > 0:
        yield "scroll up", (screen, page - 1, tracked)
    if app.screens[screen].parent >= 0:
        yield "back", (app.screens[screen].parent, 0, tracked)


def solve(
    app: App, screen: int, page: int, values: Sequence[Any], max_states: int = 200_000
) -> list[str] | None:
    """Shortest action list from ``(screen, page, values)`` that meets every goal.

    Returns:
        The actions (``[]`` if the goals already hold), or ``None`` if no plan exists within
        ``max_states`` states.
    """
    relevant = _relevant(app)
    scratch = list(values)
    start = (screen, page, tuple(values[i] for i in relevant))

    def done(state: tuple) -> bool:
        for i, idx in enumerate(relevant):
            scratch[idx] = state[2][i]
        return all(goal_met(app, g, state[0], scratch) for g in app.goals)

    if done(start):
        return []
    parent: dict[tuple, tuple[tuple, str] | None] = {start: None}
    queue = deque([start])
    while queue and len(parent) < max_states:
        state = queue.popleft()
        for action, nxt in _successors(app, state, relevant, scratch):
            if nxt in parent:
                continue
            parent[nxt] = (state, action)
            if done(nxt):
                plan = []
                step = parent[nxt]
                while step is not None:  # walk back to the start (its parent is None)
                    node, act = step
                    plan.append(act)
                    step = parent[node]
                return plan[::-1]
            queue.append(nxt)
    return None


# --- Generator -------------------------------------------------------------------------------
def _pick(rng: np.random.Generator, pool: Sequence[str], used: set[str]) -> str:
    free = [p for p in pool if p not in used]
    choice = free[int(rng.integers(len(free)))] if free else f"{pool[0]} {len(used) + 2}"
    used.add(choice)
    return choice


def _depths(parents: Sequence[int]) -> list[int]:
    depth = [0] * len(parents)
    for s in range(1, len(parents)):
        depth[s] = depth[parents[s]] + 1  # parents always precede children
    return depth


def generate_app(rng: np.random.Generator, d: Mapping[str, Any]) -> App:
    """Draw an app with ``d["screens"]`` screens and ``d["goals"]`` goals (see the env doc).

    Every goal is reachable: goal widgets sit behind locks only when the lock's switch is on
    the same screen as the locked button, so the BFS solver always finds a plan.
    """
    n, branching = int(d["screens"]), int(d["branching"])
    parents = [-1]
    for s in range(1, n):
        open_ = [p for p in range(s) if sum(q == p for q in parents) < branching]
        parents.append(open_[int(rng.integers(len(open_)))])
    titles = ["Home"]
    used_titles: set[str] = {"Home"}
    titles += [_pick(rng, _SCREEN_NAMES, used_titles) for _ in range(1, n)]
    widgets: list[Widget] = []
    per_screen: list[list[int]] = [[] for _ in range(n)]
    used_labels: set[str] = set()

    def add(screen: int, widget: Widget) -> int:
        widgets.append(widget)
        per_screen[screen].append(len(widgets) - 1)
        return len(widgets) - 1

    for s in range(1, n):
        add(parents[s], Widget("button", titles[s], target=s))
    for _ in range(int(d["cross_links"])):
        a, b = int(rng.integers(n)), int(rng.integers(1, n)) if n > 1 else 0
        if n > 1 and a != b and parents[b] != a:
            add(a, Widget("button", titles[b], target=b))
    for s in range(n):
        for _ in range(int(d["widgets"])):
            kind = rng.random()
            if kind < 0.5:
                add(s, Widget("switch", _pick(rng, _SWITCH_WORDS, used_labels),
                              value=bool(rng.random() < 0.5)))  # fmt: skip
            elif kind < 0.8:
                add(s, Widget("textbox", _pick(rng, _TEXT_WORDS, used_labels), value=""))
            else:
                add(s, Widget("text", _STATIC[int(rng.integers(len(_STATIC)))]))
    _add_locks(rng, int(d["locks"]), parents, widgets, per_screen, used_labels)
    for ids in per_screen:
        rng.shuffle(ids)  # mix navigation and settings, so the page a widget is on varies
    goals = _draw_goals(rng, d, parents, widgets, per_screen)
    name = f"{_APP_NAMES[int(rng.integers(len(_APP_NAMES)))]} Settings"
    screens = tuple(Screen(titles[s], parents[s], tuple(per_screen[s])) for s in range(n))
    return App(name, screens, tuple(widgets), tuple(goals), int(d["viewport"]))


def _add_locks(rng: np.random.Generator, count: int, parents: list[int], widgets: list[Widget],
               per_screen: list[list[int]], used: set[str]) -> None:  # fmt: skip
    """Lock ``count`` tree buttons behind a new switch on their screen (initially wrong)."""
    # Tree buttons were added first: widget b opens screen b + 1 and sits on its parent.
    for b in rng.permutation(len(parents) - 1)[:count].tolist():
        want = bool(rng.random() < 0.7)
        widgets.append(Widget("switch", _pick(rng, _LOCK_WORDS, used), value=not want))
        per_screen[parents[b + 1]].append(len(widgets) - 1)
        old = widgets[b]
        widgets[b] = Widget(old.role, old.label, old.value, old.target, (len(widgets) - 1, want))


def _draw_goals(
    rng: np.random.Generator,
    d: Mapping[str, Any],
    parents: list[int],
    widgets: list[Widget],
    per_screen: list[list[int]],
) -> list[dict[str, Any]]:
    """Goals on the deepest screens available: settings to change, maybe a screen to open."""
    depth = _depths(parents)
    where = {w: s for s, ids in enumerate(per_screen) for w in ids}
    lock_switches = {w.lock[0] for w in widgets if w.lock is not None}
    settable = [i for i, w in enumerate(widgets)
                if w.role in ("switch", "textbox") and i not in lock_switches]  # fmt: skip
    deep = max((depth[where[i]] for i in settable), default=0)
    floor = min(2, deep)
    candidates = [i for i in settable if depth[where[i]] >= floor]
    goals: list[dict[str, Any]] = []
    kinds = list(d["goal_kinds"])
    for _ in range(int(d["goals"])):
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "open" and not any(g["kind"] == "open" for g in goals) and len(parents) > 1:
            far = [s for s in range(1, len(parents)) if depth[s] >= min(2, max(depth))]
            goals.append({"kind": "open", "screen": int(far[int(rng.integers(len(far)))])})
            continue
        pool = [i for i in candidates if all(g.get("widget") != i for g in goals)]
        pool = [i for i in pool if (widgets[i].role == "textbox") == (kind == "type")] or pool
        if not pool:
            continue
        w = pool[int(rng.integers(len(pool)))]
        if widgets[w].role == "switch":
            goals.append({"kind": "toggle", "widget": int(w), "value": not widgets[w].value})
        else:
            word = _VALUE_WORDS[int(rng.integers(len(_VALUE_WORDS)))]
            goals.append({"kind": "type", "widget": int(w),
                          "value": f"{word}-{int(rng.integers(10, 100))}"})  # fmt: skip
    if not goals:  # a one-screen app with no settings: open Home is already done; add a switch
        goals.append({"kind": "open", "screen": 0})
    return goals
