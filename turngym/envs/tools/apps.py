"""The stateful apps (bank, calendar, inventory) on one in-memory SQLite database per episode.

After τ-bench (Yao et al., 2024, "τ-bench: A Benchmark for Tool-Agent-User Interaction in
Real-World Domains"): the app state is a database, tools read and write it, and success is
judged on the final state. Here the database is an in-memory :mod:`sqlite3` connection,
created from the task's rows at reset and dumped back to rows for snapshots
(:func:`dump_rows` / :func:`open_db`), so it never leaves the process as a live object.

:func:`state_hash` is the canonical hash of the database contents: tables in a fixed order,
rows sorted, surrogate ids of log rows left out (two transfers made in either order leave the
same state). Each tool is a :class:`~turngym.envs.tools.schema.ToolSpec`; failures the agent
should see (an unknown account, insufficient funds) raise :class:`ToolError`, and the messages
never reveal database values the agent did not type.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from turngym.envs.tools.schema import ToolSpec

__all__ = ["ToolError", "TABLES", "APPS", "TOOLS", "open_db", "dump_rows", "state_hash"]


class ToolError(Exception):
    """A tool failed in a way the agent should read (shown as ``{"error": ...}``)."""


# table -> (CREATE statement, columns hashed, order); transactions' txn_id is a surrogate.
TABLES: Mapping[str, tuple[str, str]] = {
    "accounts": (
        "CREATE TABLE accounts (account_id TEXT PRIMARY KEY, owner TEXT NOT NULL, "
        "kind TEXT NOT NULL, balance INTEGER NOT NULL)",
        "account_id, owner, kind, balance",
    ),
    "transactions": (
        "CREATE TABLE transactions (txn_id INTEGER PRIMARY KEY, account_id TEXT NOT NULL, "
        "amount INTEGER NOT NULL, memo TEXT NOT NULL)",
        "account_id, amount, memo",
    ),
    "events": (
        "CREATE TABLE events (event_id TEXT PRIMARY KEY, title TEXT NOT NULL, "
        "date TEXT NOT NULL, start_hour INTEGER NOT NULL, duration INTEGER NOT NULL)",
        "event_id, title, date, start_hour, duration",
    ),
    "items": (
        "CREATE TABLE items (sku TEXT PRIMARY KEY, name TEXT NOT NULL, "
        "quantity INTEGER NOT NULL, price INTEGER NOT NULL, warehouse TEXT NOT NULL)",
        "sku, name, quantity, price, warehouse",
    ),
    "pending": (
        "CREATE TABLE pending (pending_id INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
        "ref TEXT NOT NULL, amount INTEGER NOT NULL)",
        "kind, ref, amount",
    ),
}
WAREHOUSES = ("north", "south", "east", "west")
KINDS = ("checking", "savings")
DATE_PATTERN = r"2025-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
FIRST_HOUR, LAST_HOUR = 8, 18


def open_db(rows: Mapping[str, list[list[Any]]]) -> sqlite3.Connection:
    """Create an in-memory database with every table and insert ``rows`` (``table -> rows``)."""
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    for table, (create, _) in TABLES.items():
        conn.execute(create)
        data = rows.get(table) or []
        if data:
            marks = ", ".join("?" * len(data[0]))
            conn.executemany(f"INSERT INTO {table} VALUES ({marks})", [tuple(r) for r in data])
    conn.commit()
    return conn


def dump_rows(conn: sqlite3.Connection) -> dict[str, list[list[Any]]]:
    """All rows of every table, in primary-key order (the inverse of :func:`open_db`)."""
    return {
        table: [list(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY 1")]
        for table in TABLES
    }


def state_hash(conn: sqlite3.Connection) -> str:
    """SHA-256 (16 hex digits) of the canonical database contents (τ-bench's DB hash)."""
    content = {
        table: sorted(json.dumps(list(r)) for r in conn.execute(f"SELECT {columns} FROM {table}"))
        for table, (_, columns) in TABLES.items()
    }
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _one(conn: sqlite3.Connection, sql: str, key: str, what: str) -> tuple[Any, ...]:
    row = conn.execute(sql, (key,)).fetchone()
    if row is None:
        raise ToolError(f"no {what} with id {key!r}")
    return row


# --- Bank -------------------------------------------------------------------------------------
def _find_accounts(conn: sqlite3.Connection, args: Mapping[str, Any]) -> Any:
    owner = args["owner"].strip().lower()
    rows = conn.execute(
        "SELECT account_id, kind FROM accounts WHERE lower(owner) = ? ORDER BY account_id",
        (owner,),
    ).fetchall()
    return {"accounts": [{"account_id": a, "kind": k} for a, k in rows]}


def _get_balance(conn: sqlite3.Connection, args: Mapping[str, Any]) -> Any:
    sql = "SELECT balance FROM accounts WHERE account_id = ?"
    (balance,) = _one(conn, sql, args["account_id"], "account")
    return {"account_id": args["account_id"], "balance": balance}


def _move(conn: sqlite3.Connection, account: str, amount: int, memo: str) -> int:
    sql = "UPDATE accounts SET balance = balance + ? WHERE account_id = ?"
    conn.execute(sql, (amount, account))
    cursor = conn.execute(
        "INSERT INTO transactions (account_id, amount, memo) VALUES (?, ?, ?)",
        (account, amount, memo),
    )
    return int(cursor.lastrowid or 0)


def _transfer(conn: sqlite3.Connection, args: Mapping[str, Any]) -> Any:
    source, target, amount = args["from_account_id"], args["to_account_id"], args["amount"]
    if source == target:
        raise ToolError("from_account_id and to_account_id must differ")
    sql = "SELECT balance FROM accounts WHERE account_id = ?"
    (balance,) = _one(conn, sql, source, "account")
    _one(conn, sql, target, "account")
    if balance < amount:
        raise ToolError(f"insufficient funds in account {source!r}")
    memo = args.get("memo", "transfer")
    _move(conn, source, -amount, memo)
    txn = _move(conn, target, amount, memo)
    return {"status": "ok", "transaction_id": txn}


def _deposit(conn: sqlite3.Connection, args: Mapping[str, Any]) -> Any:
    _one(conn, "SELECT 1 FROM accounts WHERE account_id = ?", args["account_id"], "account")
    txn = _move(conn, args["account_id"], args["amount"], "deposit")
    return {"status": "ok", "transaction_id": txn}


def _schedule_transfer(conn: sqlite3.Connection, args: Mapping[str, Any]) -> Any:
    _one(conn, "SELECT 1 FROM accounts WHERE account_id = ?", args["from_account_id"], "account")
    ref = f"{args['from_account_id']}>{args['to_account_id']}@{args['date']}"
    conn.execute("INSERT INTO pending (kind, ref, amount) VALUES ('scheduled_transfer', ?, ?)",
                 (ref, args["amount"]))  # fmt: skip
    return {"status": "scheduled", "runs_on": args["date"]}


def _accounts_by_kind(conn: sqlite3.Connection, args: Mapping[str, Any]) -> Any:
    rows = conn.execute(
        "SELECT account_id FROM accounts WHERE kind = ? ORDER BY account_id", (args["kind"],)
    ).fetchall()
    return {"account_ids": [r[0] for r in rows]}


# --- Calendar ---------------------------------------------------------------------------------
def _event_json(row: tuple[Any, ...]) -> dict[str, Any]:
    event_id, title, date, start, duration = row
    return {"event_id": event_id, "title": title, "date": date,
            "start": f"{start:02d}:00", "duration_hours": duration}  # fmt: skip


def _find_events(conn: sqlite3.Connection, args: Mapping[str, Any]) -> Any:
    rows = conn.execute(
        "SELECT * FROM events WHERE date = ? ORDER BY start_hour, event_id", (args["date"],)
    ).fetchall()
    title = args.get("title", "").strip().lower()
    return {"events": [_event_json(r) for r in rows if title in r[1].lower()]}


def _check_slot(conn: sqlite3.Connection, date: str, start: int, hours: int, skip: str) -> None:
    if start + hours > LAST_HOUR + 1:
        raise ToolError(f"events must end by {LAST_HOUR + 1}:00")
    for event_id, other_start, other_hours in conn.execute(
        "SELECT event_id, start_hour, duration FROM events WHERE date = ? ORDER BY event_id",
        (date,),
    ):
        if event_id != skip and start < other_start + other_hours and other_start < start + hours:
            raise ToolError(f"the time slot overlaps event {event_id!r}")


def _create_event(conn: sqlite3.Connection, args: Mapping[str, Any]) -> Any:
    date, start, hours = args["date"], args["start_hour"], args["duration_hours"]
    _check_slot(conn, date, start, hours, skip="")
    (count,) = conn.execute("SELECT count(*) FROM events").fetchone()
    event_id = f"EV-{count + 1:03d}"
    while conn.execute("SELECT 1 FROM events WHERE event_id = ?", (event_id,)).fetchone():
        count += 1
        event_id = f"EV-{count + 1:03d}"
    conn.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?)",
                 (event_id, args["title"].strip(), date, start, hours))  # fmt: skip
    return {"status": "ok", "event_id": event_id}


def _cancel_event(conn: sqlite3.Connection, args: Mapping[str, Any]) -> Any:
    _one(conn, "SELECT 1 FROM events WHERE event_id = ?", args["event_id"], "event")
    conn.execute("DELETE FROM events WHERE event_id = ?", (args["event_id"],))
    return {"status": "cancelled", "event_id": args["event_id"]}


def _reschedule_event(conn: sqlite3.Connection, args: Mapping[str, Any]) -> Any:
    sql = "SELECT duration FROM events WHERE event_id = ?"
    (hours,) = _one(conn, sql, args["event_id"], "event")
    _check_slot(conn, args["date"], args["start_hour"], hours, skip=args["event_id"])
    conn.execute("UPDATE events SET date = ?, start_hour = ? WHERE event_id = ?",
                 (args["date"], args["start_hour"], args["event_id"]))  # fmt: skip
    return {"status": "ok", "event_id": args["event_id"]}


def _add_reminder(conn: sqlite3.Connection, args: Mapping[str, Any]) -> Any:
    _one(conn, "SELECT 1 FROM events WHERE event_id = ?", args["event_id"], "event")
    conn.execute("INSERT INTO pending (kind, ref, amount) VALUES ('reminder', ?, ?)",
                 (args["event_id"], args["minutes_before"]))  # fmt: skip
    return {"status": "ok"}


# --- Inventory --------------------------------------------------------------------------------
def _search_items(conn: sqlite3.Connection, args: Mapping[str, Any]) -> Any:
    query = args["query"].strip().lower()
    rows = conn.execute("SELECT sku, name, warehouse FROM items ORDER BY sku").fetchall()
    return {"items": [{"sku": s, "name": n, "warehouse": w}
                      for s, n, w in rows if query and query in n.lower()]}  # fmt: skip


def _get_item(conn: sqlite3.Connection, args: Mapping[str, Any]) -> Any:
    row = _one(conn, "SELECT * FROM items WHERE sku = ?", args["sku"], "item")
    keys = ("sku", "name", "quantity", "price", "warehouse")
    return dict(zip(keys, row, strict=True))


def _restock(conn: sqlite3.Connection, args: Mapping[str, Any]) -> Any:
    _one(conn, "SELECT 1 FROM items WHERE sku = ?", args["sku"], "item")
    conn.execute("UPDATE items SET quantity = quantity + ? WHERE sku = ?",
                 (args["quantity"], args["sku"]))  # fmt: skip
    return {"status": "ok", "sku": args["sku"]}


def _ship(conn: sqlite3.Connection, args: Mapping[str, Any]) -> Any:
    sql = "SELECT quantity FROM items WHERE sku = ?"
    (quantity,) = _one(conn, sql, args["sku"], "item")
    if quantity < args["quantity"]:
        raise ToolError(f"not enough stock of {args['sku']!r}")
    conn.execute("UPDATE items SET quantity = quantity - ? WHERE sku = ?",
                 (args["quantity"], args["sku"]))  # fmt: skip
    return {"status": "shipped", "sku": args["sku"]}


def _set_price(conn: sqlite3.Connection, args: Mapping[str, Any]) -> Any:
    _one(conn, "SELECT 1 FROM items WHERE sku = ?", args["sku"], "item")
    conn.execute("UPDATE items SET price = ? WHERE sku = ?", (args["price"], args["sku"]))
    return {"status": "ok", "sku": args["sku"]}


def _reserve(conn: sqlite3.Connection, args: Mapping[str, Any]) -> Any:
    _one(conn, "SELECT 1 FROM items WHERE sku = ?", args["sku"], "item")
    conn.execute("INSERT INTO pending (kind, ref, amount) VALUES ('reservation', ?, ?)",
                 (args["sku"], args["quantity"]))  # fmt: skip
    return {"status": "reserved"}


def _by_warehouse(conn: sqlite3.Connection, args: Mapping[str, Any]) -> Any:
    rows = conn.execute(
        "SELECT sku, name FROM items WHERE warehouse = ? ORDER BY sku", (args["warehouse"],)
    ).fetchall()
    return {"items": [{"sku": s, "name": n} for s, n in rows]}


# --- The catalogue ----------------------------------------------------------------------------
def _s(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, "minLength": 1, "maxLength": 80,
            **extra}  # fmt: skip


def _i(description: str, low: int, high: int) -> dict[str, Any]:
    return {"type": "integer", "description": description, "minimum": low, "maximum": high}


_DATE = _s("Date as YYYY-MM-DD.", pattern=DATE_PATTERN, format_hint="YYYY-MM-DD (2025)")
_HOUR = _i("Start hour, 24-hour clock.", FIRST_HOUR, LAST_HOUR)
_ACCOUNT, _SKU = _s("Account id, e.g. ACC-1234."), _s("Item SKU, e.g. SKU-1234.")
_EVENT = _s("Event id, e.g. EV-001.")
_MONEY = _i("Whole dollars.", 1, 1_000_000)
_UNITS = _i("Number of units.", 1, 100_000)

_SPECS: tuple[ToolSpec, ...] = (
    ToolSpec("bank_find_accounts", "List the accounts (id and kind) held by a customer.",
             {"owner": _s("Full name of the account holder.")}, ("owner",), _find_accounts,
             "bank"),
    ToolSpec("bank_get_balance", "Get the current balance of one account in dollars.",
             {"account_id": _ACCOUNT}, ("account_id",), _get_balance, "bank"),
    ToolSpec("bank_transfer", "Move money now from one account to another.",
             {"from_account_id": _ACCOUNT, "to_account_id": _ACCOUNT, "amount": _MONEY,
              "memo": _s("Optional note stored with the transfer.")},
             ("from_account_id", "to_account_id", "amount"), _transfer, "bank", True),
    ToolSpec("bank_deposit", "Deposit money into an account.",
             {"account_id": _ACCOUNT, "amount": _MONEY}, ("account_id", "amount"), _deposit,
             "bank", True),
    ToolSpec("calendar_find_events", "List the events on a date, optionally filtered by title.",
             {"date": _DATE, "title": _s("Words the title must contain.")}, ("date",),
             _find_events, "calendar"),
    ToolSpec("calendar_create_event", "Create an event; it must not overlap another one.",
             {"title": _s("Event title."), "date": _DATE, "start_hour": _HOUR,
              "duration_hours": _i("Length in hours.", 1, 4)},
             ("title", "date", "start_hour", "duration_hours"), _create_event, "calendar", True),
    ToolSpec("calendar_cancel_event", "Delete an event.", {"event_id": _EVENT}, ("event_id",),
             _cancel_event, "calendar", True),
    ToolSpec("calendar_reschedule_event", "Move an event to another date and start hour.",
             {"event_id": _EVENT, "date": _DATE, "start_hour": _HOUR},
             ("event_id", "date", "start_hour"), _reschedule_event, "calendar", True),
    ToolSpec("inventory_search", "Find items whose name contains the query (sku, name, "
             "warehouse).", {"query": _s("Part of the item name.")}, ("query",), _search_items,
             "inventory"),
    ToolSpec("inventory_get_item", "Get an item's details: quantity in stock and unit price.",
             {"sku": _SKU}, ("sku",), _get_item, "inventory"),
    ToolSpec("inventory_restock", "Add units to an item's stock.",
             {"sku": _SKU, "quantity": _UNITS}, ("sku", "quantity"), _restock, "inventory", True),
    ToolSpec("inventory_ship", "Remove shipped units from an item's stock.",
             {"sku": _SKU, "quantity": _UNITS}, ("sku", "quantity"), _ship, "inventory", True),
    ToolSpec("inventory_set_price", "Set an item's unit price in whole dollars.",
             {"sku": _SKU, "price": _MONEY}, ("sku", "price"), _set_price, "inventory", True),
)  # fmt: skip

DISTRACTORS: tuple[ToolSpec, ...] = (
    ToolSpec("bank_schedule_transfer", "Schedule a transfer to run on a future date.",
             {"from_account_id": _ACCOUNT, "to_account_id": _ACCOUNT, "amount": _MONEY,
              "date": _DATE}, ("from_account_id", "to_account_id", "amount", "date"),
             _schedule_transfer, "bank", True),
    ToolSpec("bank_find_accounts_by_kind", "List the ids of all accounts of one kind.",
             {"kind": {"type": "string", "enum": list(KINDS)}}, ("kind",), _accounts_by_kind,
             "bank"),
    ToolSpec("calendar_add_reminder", "Add a reminder before an event.",
             {"event_id": _EVENT, "minutes_before": _i("Minutes before the start.", 5, 1440)},
             ("event_id", "minutes_before"), _add_reminder, "calendar", True),
    ToolSpec("inventory_reserve_stock", "Reserve units of an item for a future order.",
             {"sku": _SKU, "quantity": _UNITS}, ("sku", "quantity"), _reserve, "inventory",
             True),
    ToolSpec("inventory_list_warehouse", "List the items stored in one warehouse.",
             {"warehouse": {"type": "string", "enum": list(WAREHOUSES)}}, ("warehouse",),
             _by_warehouse, "inventory"),
)  # fmt: skip

FINISH = ToolSpec(
    "finish",
    "End the episode. Put the answer in 'answer' when the request asks a question.",
    {"answer": {"type": "string", "description": "The final answer, if one is asked for.",
                "maxLength": 500}},
    (),
    lambda conn, args: {"status": "finished"},
    "core",
)  # fmt: skip

APPS: tuple[str, ...] = ("bank", "calendar", "inventory")
TOOLS: Mapping[str, ToolSpec] = {t.name: t for t in (*_SPECS, *DISTRACTORS, FINISH)}
"""Every tool by name; an episode exposes a subset (its task's ``tools``)."""
CORE_TOOLS: Mapping[str, tuple[str, ...]] = {
    app: tuple(t.name for t in _SPECS if t.app == app) for app in APPS
}
DISTRACTOR_TOOLS: tuple[str, ...] = tuple(t.name for t in DISTRACTORS)
