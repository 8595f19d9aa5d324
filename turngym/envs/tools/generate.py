"""Task generation, backwards from a gold call trace (docs/environments.md#tooluse).

A task is built the way SynthTools prescribes: sample the seeded database, then sample goals
(a state change or a question) and for each derive the gold calls, *executing* them on the
database so look-ups feed later calls with real outputs (ToolHop-style chains: a transfer
needs the account ids that ``bank_find_accounts`` returns; "raise the price by $5" needs the
price that ``inventory_get_item`` returns). The user request is rendered from the goals, not
from the calls: it names people, titles and items, never the ids that must be looked up. The
gold final state is the database after the trace (τ-bench, Yao et al., 2024).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from turngym.envs.tools.apps import (
    APPS,
    CORE_TOOLS,
    DISTRACTOR_TOOLS,
    FIRST_HOUR,
    KINDS,
    LAST_HOUR,
    TOOLS,
    WAREHOUSES,
    open_db,
)
from turngym.envs.tools.calls import answer_tokens
from turngym.envs.tools.schema import validate_arguments

__all__ = ["generate_task", "render_request", "tool_names", "GOALS"]

# fmt: off
FIRST = ("Ada", "Bruno", "Chiara", "Dmitri", "Elif", "Farah", "Goran", "Hana", "Ivo", "Jun",
         "Kofi", "Lena", "Mateo", "Nadia", "Oskar", "Priya", "Quinn", "Rosa", "Sami", "Tomas")
LAST = ("Abbott", "Brandt", "Castillo", "Dubois", "Eriksen", "Fujita", "Gallo", "Haddad",
        "Ibsen", "Kowalski", "Lindqvist", "Moreau", "Novak", "Okafor", "Petrov", "Rossi")
TITLES = ("budget review", "design sync", "dentist visit", "team lunch", "yoga class",
          "client call", "code review", "board meeting", "piano lesson", "sprint planning",
          "hiring panel", "vendor demo", "book club", "quarterly report", "site visit")
ADJECTIVES = ("red", "blue", "steel", "oak", "compact", "deluxe", "wireless", "glass",
              "bamboo", "travel", "ergonomic", "magnetic")
NOUNS = ("stapler", "desk lamp", "notebook", "office chair", "monitor stand", "water bottle",
         "backpack", "keyboard", "whiteboard", "paper shredder", "label printer", "coffee mug")
DATES = tuple(f"2025-03-{d:02d}" for d in (3, 4, 5, 6, 7, 10, 11, 12, 13, 14))
# fmt: on


def _pick(rng: np.random.Generator, items: Sequence[Any]) -> Any:
    return items[int(rng.integers(len(items)))]


def _ids(rng: np.random.Generator, prefix: str, n: int) -> list[str]:
    numbers = rng.choice(np.arange(1000, 10000), size=n, replace=False)
    return [f"{prefix}-{int(x)}" for x in numbers]


# --- The seeded database ----------------------------------------------------------------------
def _seed_accounts(rng: np.random.Generator, n: int) -> list[list[Any]]:
    names = [f"{f} {last}" for f in FIRST for last in LAST]
    owners = [names[int(i)] for i in rng.choice(len(names), size=n, replace=False)]
    ids, rows = _ids(rng, "ACC", 2 * n), list[list[Any]]()
    for owner in owners:
        for kind in KINDS if rng.random() < 0.6 else KINDS[:1]:
            rows.append([ids[len(rows)], owner, kind, int(rng.integers(100, 10_000))])
            if len(rows) == n:
                return rows
    return rows


def _free_slots(busy: Sequence[tuple[int, int]], hours: int) -> list[int]:
    return [h for h in range(FIRST_HOUR, LAST_HOUR + 2 - hours)
            if all(h + hours <= s or s + d <= h for s, d in busy)]  # fmt: skip


def _seed_events(rng: np.random.Generator, n: int) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for _ in range(4 * n):
        date, title, hours = _pick(rng, DATES), _pick(rng, TITLES), int(rng.integers(1, 3))
        same_day = [r for r in rows if r[2] == date]
        slots = _free_slots([(r[3], r[4]) for r in same_day], hours)
        if title in {r[1] for r in same_day} or not slots:
            continue
        rows.append([f"EV-{len(rows) + 1:03d}", title, date, _pick(rng, slots), hours])
        if len(rows) == n:
            break
    return rows


def _seed_items(rng: np.random.Generator, n: int) -> list[list[Any]]:
    names = [f"{a} {b}" for a in ADJECTIVES for b in NOUNS]
    chosen = [names[int(i)] for i in rng.choice(len(names), size=n, replace=False)]
    skus = _ids(rng, "SKU", n)
    return [[sku, name, int(rng.integers(10, 400)), int(rng.integers(2, 300)),
             _pick(rng, WAREHOUSES)] for sku, name in zip(skus, chosen, strict=True)]  # fmt: skip


def seed_rows(rng: np.random.Generator, apps: Sequence[str], records: int) -> dict[str, list]:
    """The initial rows of every table; apps that are not enabled get no rows."""
    return {
        "accounts": _seed_accounts(rng, records) if "bank" in apps else [],
        "events": _seed_events(rng, records) if "calendar" in apps else [],
        "items": _seed_items(rng, records) if "inventory" in apps else [],
    }


# --- Goals ------------------------------------------------------------------------------------
@dataclass(slots=True)
class Goal:
    """One sub-goal: the sentence the user says, its gold calls and (for questions) answer."""

    sentence: str
    calls: list[dict[str, Any]]
    answer: str | None = None


def _do(conn: sqlite3.Connection, name: str, **arguments: Any) -> tuple[dict, Any]:
    """Run a gold call; a failure here is a generator bug, so it raises."""
    problem = validate_arguments(TOOLS[name], arguments)
    if problem is not None:
        raise RuntimeError(f"gold call {name} is invalid: {problem}")
    output = TOOLS[name].run(conn, arguments)
    conn.commit()
    return {"name": name, "arguments": arguments}, output


def _fresh(rows: Sequence[Sequence[Any]], used: set[str]) -> list[Sequence[Any]]:
    return [r for r in rows if str(r[0]) not in used and str(r[1]) not in used]


def _account(rng: np.random.Generator, conn: sqlite3.Connection, used: set[str]) -> Any:
    rows = _fresh(conn.execute("SELECT * FROM accounts ORDER BY 1").fetchall(), used)
    return _pick(rng, rows) if rows else None


def _goal_balance(rng: np.random.Generator, conn: sqlite3.Connection, used: set[str]) -> Any:
    row = _account(rng, conn, used)
    if row is None:
        return None
    account, owner, kind, _ = row
    find, _ = _do(conn, "bank_find_accounts", owner=owner)
    get, out = _do(conn, "bank_get_balance", account_id=account)
    used.update((account, owner))
    return Goal(f"tell me the balance of {owner}'s {kind} account in dollars", [find, get],
                str(out["balance"]))  # fmt: skip


def _goal_transfer(rng: np.random.Generator, conn: sqlite3.Connection, used: set[str]) -> Any:
    source, target = _account(rng, conn, used), _account(rng, conn, used)
    if source is None or target is None or source[1] == target[1] or source[3] < 20:
        return None
    amount = 5 * int(rng.integers(2, min(source[3], 1000) // 5 + 1))
    calls = [_do(conn, "bank_find_accounts", owner=o)[0] for o in (source[1], target[1])]
    calls.append(_do(conn, "bank_transfer", from_account_id=source[0], to_account_id=target[0],
                     amount=amount)[0])  # fmt: skip
    used.update((source[0], source[1], target[0], target[1]))
    return Goal(f"move ${amount} from {source[1]}'s {source[2]} account to {target[1]}'s "
                f"{target[2]} account", calls)  # fmt: skip


def _goal_deposit(rng: np.random.Generator, conn: sqlite3.Connection, used: set[str]) -> Any:
    row = _account(rng, conn, used)
    if row is None:
        return None
    amount = 5 * int(rng.integers(2, 200))
    calls = [_do(conn, "bank_find_accounts", owner=row[1])[0],
             _do(conn, "bank_deposit", account_id=row[0], amount=amount)[0]]  # fmt: skip
    used.update((row[0], row[1]))
    return Goal(f"deposit ${amount} into {row[1]}'s {row[2]} account", calls)


def _goal_sweep(rng: np.random.Generator, conn: sqlite3.Connection, used: set[str]) -> Any:
    rows = conn.execute("SELECT * FROM accounts ORDER BY 1").fetchall()
    owners = sorted({r[1] for r in _fresh(rows, used) if r[2] == "savings" and r[3] > 0})
    if not owners:
        return None
    owner = _pick(rng, owners)
    ids = {r[2]: r[0] for r in rows if r[1] == owner}
    if "checking" not in ids or ids["checking"] in used:
        return None
    find, _ = _do(conn, "bank_find_accounts", owner=owner)
    get, out = _do(conn, "bank_get_balance", account_id=ids["savings"])
    move, _ = _do(conn, "bank_transfer", from_account_id=ids["savings"],
                  to_account_id=ids["checking"], amount=out["balance"])  # fmt: skip
    used.update((owner, ids["savings"], ids["checking"]))
    return Goal(f"move the entire balance of {owner}'s savings account into their checking "
                "account", [find, get, move])  # fmt: skip


def _event(rng: np.random.Generator, conn: sqlite3.Connection, used: set[str]) -> Any:
    rows = _fresh(conn.execute("SELECT * FROM events ORDER BY 1").fetchall(), used)
    rows = [r for r in rows if r[2] not in used]  # one goal per date keeps the order clear
    return _pick(rng, rows) if rows else None


def _goal_when(rng: np.random.Generator, conn: sqlite3.Connection, used: set[str]) -> Any:
    row = _event(rng, conn, used)
    if row is None:
        return None
    find, _ = _do(conn, "calendar_find_events", date=row[2])
    used.update((row[0], row[2]))
    return Goal(f"tell me at what time the {row[1]} on {row[2]} starts (HH:MM)", [find],
                f"{row[3]:02d}:00")  # fmt: skip


def _goal_cancel(rng: np.random.Generator, conn: sqlite3.Connection, used: set[str]) -> Any:
    row = _event(rng, conn, used)
    if row is None:
        return None
    calls = [_do(conn, "calendar_find_events", date=row[2])[0],
             _do(conn, "calendar_cancel_event", event_id=row[0])[0]]  # fmt: skip
    used.update((row[0], row[2]))
    return Goal(f"cancel the {row[1]} on {row[2]}", calls)


def _busy(conn: sqlite3.Connection, date: str, skip: str = "") -> list[tuple[int, int]]:
    rows = conn.execute(
        "SELECT event_id, start_hour, duration FROM events WHERE date = ? ORDER BY 1", (date,)
    ).fetchall()
    return [(s, d) for e, s, d in rows if e != skip]


def _goal_reschedule(rng: np.random.Generator, conn: sqlite3.Connection, used: set[str]) -> Any:
    row = _event(rng, conn, used)
    dates = [d for d in DATES if d not in used and d != (row[2] if row else "")]
    if row is None or not dates:
        return None
    date = _pick(rng, dates)
    titles = {t for (t,) in conn.execute("SELECT title FROM events WHERE date = ?", (date,))}
    slots = _free_slots(_busy(conn, date, row[0]), row[4])
    if not slots or row[1] in titles:
        return None
    hour = _pick(rng, slots)
    calls = [_do(conn, "calendar_find_events", date=row[2])[0],
             _do(conn, "calendar_reschedule_event", event_id=row[0], date=date,
                 start_hour=hour)[0]]  # fmt: skip
    used.update((row[0], row[2], date))
    return Goal(f"move the {row[1]} on {row[2]} to {date} at {hour:02d}:00", calls)


def _goal_create(rng: np.random.Generator, conn: sqlite3.Connection, used: set[str]) -> Any:
    date, hours = _pick(rng, [d for d in DATES if d not in used] or [""]), int(rng.integers(1, 4))
    titles = {t for (t,) in conn.execute("SELECT title FROM events WHERE date = ?", (date,))}
    options = [t for t in TITLES if t not in titles]
    slots = _free_slots(_busy(conn, date), hours) if date else []
    if not slots or not options:
        return None
    title, hour = _pick(rng, options), _pick(rng, slots)
    call, _ = _do(conn, "calendar_create_event", title=title, date=date, start_hour=hour,
                  duration_hours=hours)  # fmt: skip
    used.add(date)
    unit = "hour" if hours == 1 else "hours"
    return Goal(f"add a {title} on {date} at {hour:02d}:00 lasting {hours} {unit}", [call])


def _item(rng: np.random.Generator, conn: sqlite3.Connection, used: set[str]) -> Any:
    rows = _fresh(conn.execute("SELECT * FROM items ORDER BY 1").fetchall(), used)
    return _pick(rng, rows) if rows else None


def _goal_stock(rng: np.random.Generator, conn: sqlite3.Connection, used: set[str]) -> Any:
    row = _item(rng, conn, used)
    if row is None:
        return None
    calls = [_do(conn, "inventory_search", query=row[1])[0]]
    get, out = _do(conn, "inventory_get_item", sku=row[0])
    used.update((row[0], row[1]))
    return Goal(f"tell me how many units of {row[1]} are in stock", [*calls, get],
                str(out["quantity"]))  # fmt: skip


def _goal_restock(rng: np.random.Generator, conn: sqlite3.Connection, used: set[str]) -> Any:
    row, units = _item(rng, conn, used), int(rng.integers(5, 200))
    if row is None:
        return None
    calls = [_do(conn, "inventory_search", query=row[1])[0],
             _do(conn, "inventory_restock", sku=row[0], quantity=units)[0]]  # fmt: skip
    used.update((row[0], row[1]))
    return Goal(f"add {units} units of {row[1]} to stock", calls)


def _goal_ship(rng: np.random.Generator, conn: sqlite3.Connection, used: set[str]) -> Any:
    row = _item(rng, conn, used)
    if row is None:
        return None
    units = int(rng.integers(1, row[2] + 1))
    calls = [_do(conn, "inventory_search", query=row[1])[0],
             _do(conn, "inventory_ship", sku=row[0], quantity=units)[0]]  # fmt: skip
    used.update((row[0], row[1]))
    return Goal(f"ship {units} units of {row[1]}", calls)


def _goal_raise(rng: np.random.Generator, conn: sqlite3.Connection, used: set[str]) -> Any:
    row, delta = _item(rng, conn, used), int(rng.integers(1, 30))
    if row is None:
        return None
    search, _ = _do(conn, "inventory_search", query=row[1])
    get, out = _do(conn, "inventory_get_item", sku=row[0])
    update, _ = _do(conn, "inventory_set_price", sku=row[0], price=out["price"] + delta)
    used.update((row[0], row[1]))
    return Goal(f"raise the unit price of {row[1]} by ${delta}", [search, get, update])


GoalFn = Callable[[np.random.Generator, sqlite3.Connection, set[str]], "Goal | None"]
GOALS: Mapping[str, tuple[tuple[GoalFn, int, bool], ...]] = {
    "bank": ((_goal_balance, 2, True), (_goal_transfer, 3, False), (_goal_deposit, 2, False),
             (_goal_sweep, 3, False)),
    "calendar": ((_goal_when, 1, True), (_goal_cancel, 2, False), (_goal_reschedule, 2, False),
                 (_goal_create, 1, False)),
    "inventory": ((_goal_stock, 2, True), (_goal_restock, 2, False), (_goal_ship, 2, False),
                  (_goal_raise, 3, False)),
}  # fmt: skip
"""Per app: (goal function, number of gold calls, is a question)."""


# --- Rendering --------------------------------------------------------------------------------
def render_request(sentences: Sequence[str]) -> str:
    """Join goal sentences into one request ("First, ... Then, ... Finally, ...")."""
    if len(sentences) == 1:
        return f"Please {sentences[0]}."
    parts = [f"First, {sentences[0]}."]
    parts += [f"Then, {s}." for s in sentences[1:-1]]
    parts.append(f"Finally, {sentences[-1]}.")
    return " ".join(parts)


def tool_names(rng: np.random.Generator, apps: Sequence[str], distractors: int) -> list[str]:
    """The episode's catalogue: the enabled apps' tools, ``distractors`` near-duplicates, finish."""
    pool = [t for t in DISTRACTOR_TOOLS if TOOLS[t].app in apps]
    chosen = {pool[int(i)] for i in rng.permutation(len(pool))[:distractors]}
    names = [t for app in APPS if app in apps for t in CORE_TOOLS[app]]
    return [*names, *(t for t in DISTRACTOR_TOOLS if t in chosen), "finish"]


def _leaks(answer: str | None, texts: Sequence[str]) -> bool:
    if answer is None:
        return False
    want = answer_tokens(answer)
    for text in texts:
        have = answer_tokens(text)
        if any(have[i : i + len(want)] == want for i in range(len(have) - len(want) + 1)):
            return True
    return False


def _sample_goals(
    rng: np.random.Generator, rows: Mapping[str, list], difficulty: Mapping[str, Any]
) -> list[Goal] | None:
    """Draw ``goals`` sub-goals whose traces total ``min_calls``..``max_calls`` calls."""
    apps = list(difficulty["apps"])
    low, high = int(difficulty["min_calls"]), int(difficulty["max_calls"])
    conn, used, goals, calls = open_db(rows), set[Any](), [], 0
    asked = False
    for _ in range(int(difficulty["goals"])):
        room = high - calls
        options = [(fn, n, q) for app in apps for fn, n, q in GOALS[app]
                   if n <= room and not (q and asked)]  # fmt: skip
        if not options:
            break
        fn, _, question = _pick(rng, options)
        goal = fn(rng, conn, used)
        if goal is not None:
            goals.append(goal)
            calls += len(goal.calls)
            asked = asked or question
    conn.close()
    return goals if goals and low <= calls <= high else None


def generate_task(rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict[str, Any]:
    """Draw one task: seeded rows, tool catalogue, request, gold calls and answer.

    Raises:
        RuntimeError: The knobs admit no task (e.g. ``min_calls`` above what ``goals`` goals
            of the enabled apps can need).
    """
    apps = [a for a in APPS if a in difficulty["apps"]]
    for _ in range(200):
        rows = seed_rows(rng, apps, int(difficulty["records"]))
        goals = _sample_goals(rng, rows, difficulty)
        if goals is None:
            continue
        request = render_request([g.sentence for g in goals])
        answer = next((g.answer for g in goals if g.answer is not None), None)
        tools = tool_names(rng, apps, int(difficulty["distractor_tools"]))
        if _leaks(answer, [request, *(str(TOOLS[t].schema()) for t in tools)]):
            continue
        gold = [call for g in goals for call in g.calls]
        gold.append({"name": "finish", "arguments": {} if answer is None else {"answer": answer}})
        return {"apps": apps, "db": rows, "tools": tools, "request": request,
                "gold_calls": gold, "answer": answer}  # fmt: skip
    raise RuntimeError(
        f"ToolUse: no task fits the knobs {dict(difficulty)}; lower 'min_calls' or raise "
        "'goals' or 'max_calls'."
    )
