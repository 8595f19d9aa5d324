"""Known-answer, property and behaviour tests for turngym/ToolUse-v0 (τ-bench/BFCL/MatchTIR)."""

from __future__ import annotations

import json
import pickle
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import turngym
from turngym.envs.tools.apps import TOOLS, dump_rows, open_db, state_hash
from turngym.envs.tools.calls import answer_matches, call_similarity, match_calls, run_call
from turngym.envs.tools.env import CALL_MATCH, ToolUse
from turngym.envs.tools.generate import GOALS
from turngym.envs.tools.schema import validate_arguments
from turngym.testing import check_env

ROWS = {
    "accounts": [
        ["ACC-1111", "Ada Abbott", "checking", 500],
        ["ACC-2222", "Ada Abbott", "savings", 1250],
        ["ACC-3333", "Bruno Brandt", "checking", 40],
    ],
    "events": [
        ["EV-001", "team lunch", "2025-03-04", 12, 1],
        ["EV-002", "code review", "2025-03-04", 14, 2],
    ],
    "items": [
        ["SKU-1001", "red stapler", 30, 12, "north"],
        ["SKU-1002", "blue stapler", 5, 10, "south"],
    ],
}
ALL_TOOLS = [*TOOLS]


def call(name, **arguments):
    return {"name": name, "arguments": arguments}


def tagged(c):
    return "<tool_call>" + json.dumps(c) + "</tool_call>"


def task(gold, answer=None, request="Please do the thing."):
    return {"db": ROWS, "tools": ALL_TOOLS, "request": request, "gold_calls": gold,
            "answer": answer, "apps": ["bank", "calendar", "inventory"]}  # fmt: skip


SWEEP = [
    call("bank_find_accounts", owner="Ada Abbott"),
    call("bank_get_balance", account_id="ACC-2222"),
    call("bank_transfer", from_account_id="ACC-2222", to_account_id="ACC-1111", amount=1250),
    call("finish"),
]
QUESTION = [call("bank_get_balance", account_id="ACC-2222"), call("finish", answer="1250")]


def start(gold, answer=None):
    env = ToolUse()
    obs, info = env.reset(options={"task": task(gold, answer)})
    return env, obs, info


# --- Tools of each app (known answers) --------------------------------------------------------
def run(conn, name, **arguments):
    result = run_call(conn, json.dumps(call(name, **arguments)), ALL_TOOLS)
    return result.output


def test_bank_tools():
    conn = open_db(ROWS)
    assert run(conn, "bank_find_accounts", owner=" ada abbott ") == {
        "accounts": [{"account_id": "ACC-1111", "kind": "checking"},
                     {"account_id": "ACC-2222", "kind": "savings"}]}  # fmt: skip
    assert run(conn, "bank_get_balance", account_id="ACC-3333")["balance"] == 40
    out = run(conn, "bank_transfer", from_account_id="ACC-3333", to_account_id="ACC-1111",
              amount=41)  # fmt: skip
    assert out == {"error": "insufficient funds in account 'ACC-3333'"}
    assert run(conn, "bank_transfer", from_account_id="ACC-3333", to_account_id="ACC-1111",
               amount=40)["status"] == "ok"  # fmt: skip
    assert run(conn, "bank_deposit", account_id="ACC-3333", amount=7)["transaction_id"] == 3
    balances = {r[0]: r[3] for r in dump_rows(conn)["accounts"]}
    assert balances == {"ACC-1111": 540, "ACC-2222": 1250, "ACC-3333": 7}
    missing = run(conn, "bank_get_balance", account_id="ACC-9")
    assert missing == {"error": "no account with id 'ACC-9'"}


def test_calendar_tools():
    conn = open_db(ROWS)
    events = run(conn, "calendar_find_events", date="2025-03-04", title="REVIEW")["events"]
    assert events == [{"event_id": "EV-002", "title": "code review", "date": "2025-03-04",
                       "start": "14:00", "duration_hours": 2}]  # fmt: skip
    clash = run(conn, "calendar_create_event", title="x", date="2025-03-04", start_hour=15,
                duration_hours=1)  # fmt: skip
    assert clash == {"error": "the time slot overlaps event 'EV-002'"}
    made = run(conn, "calendar_create_event", title="x", date="2025-03-04", start_hour=16,
               duration_hours=3)  # fmt: skip
    assert made == {"status": "ok", "event_id": "EV-003"}
    assert run(conn, "calendar_reschedule_event", event_id="EV-001", date="2025-03-05",
               start_hour=9)["status"] == "ok"  # fmt: skip
    assert run(conn, "calendar_cancel_event", event_id="EV-002")["status"] == "cancelled"
    assert [r[0] for r in dump_rows(conn)["events"]] == ["EV-001", "EV-003"]
    assert "end by" in run(conn, "calendar_create_event", title="y", date="2025-03-06",
                           start_hour=18, duration_hours=2)["error"]  # fmt: skip


def test_inventory_tools():
    conn = open_db(ROWS)
    assert [i["sku"] for i in run(conn, "inventory_search", query="Stapler")["items"]] == [
        "SKU-1001", "SKU-1002"]  # fmt: skip
    assert run(conn, "inventory_get_item", sku="SKU-1002") == {
        "sku": "SKU-1002", "name": "blue stapler", "quantity": 5, "price": 10,
        "warehouse": "south"}  # fmt: skip
    assert run(conn, "inventory_ship", sku="SKU-1002", quantity=6) == {
        "error": "not enough stock of 'SKU-1002'"}  # fmt: skip
    run(conn, "inventory_ship", sku="SKU-1002", quantity=5)
    run(conn, "inventory_restock", sku="SKU-1001", quantity=10)
    run(conn, "inventory_set_price", sku="SKU-1001", price=99)
    assert dump_rows(conn)["items"] == [["SKU-1001", "red stapler", 40, 99, "north"],
                                        ["SKU-1002", "blue stapler", 0, 10, "south"]]  # fmt: skip


def test_state_hash_ignores_log_ids_and_order():
    a, b = open_db(ROWS), open_db(ROWS)
    run(a, "bank_deposit", account_id="ACC-1111", amount=5)
    run(a, "bank_deposit", account_id="ACC-3333", amount=6)
    run(b, "bank_deposit", account_id="ACC-3333", amount=6)
    run(b, "bank_deposit", account_id="ACC-1111", amount=5)
    assert state_hash(a) == state_hash(b) != state_hash(open_db(ROWS))


# --- Schema validation -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("bank_transfer", {"from_account_id": "A", "to_account_id": "B"},
         "missing required argument 'amount'"),
        ("bank_transfer", {"from_account_id": "A", "to_account_id": "B", "amount": "5"},
         "argument 'amount' must be an integer, got string '5'"),
        ("bank_deposit", {"account_id": "A", "amount": 0}, "must be at least 1"),
        ("bank_deposit", {"account_id": "A", "amount": True}, "must be an integer, got boolean"),
        ("calendar_find_events", {"date": "March 4"}, "must look like YYYY-MM-DD"),
        ("calendar_create_event", {"title": "t", "date": "2025-03-04", "start_hour": 3,
                                   "duration_hours": 1}, "must be at least 8"),
        ("bank_find_accounts_by_kind", {"kind": "gold"}, "must be one of ['checking', 'savings']"),
        ("inventory_search", {"query": "x", "limit": 3}, "unknown argument 'limit'"),
        ("inventory_search", {"query": ""}, "must not be empty"),
        ("finish", {"answer": 42}, "argument 'answer' must be a string"),
    ],
)  # fmt: skip
def test_schema_validation_messages(name, arguments, expected):
    assert expected in validate_arguments(TOOLS[name], arguments)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"arguments": {}}', "has no 'name'"),
        ('{"name": "bank_rob", "arguments": {}}', "unknown tool 'bank_rob'"),
        ('{"name": "finish", "arguments": [1]}', "'arguments' must be a JSON object"),
        ('{"name": "finish", "arguments": {}, "id": 1}', "unexpected key 'id'"),
        ('{"name": "bank_get_balance", "arguments": {"account_id": 12}}', "must be a string"),
    ],
)
def test_malformed_calls_give_tool_errors(content, expected):
    env, *_ = start(SWEEP)
    before = env.state_key()
    obs, reward, terminated, _, info = env.step(f"<tool_call>{content}</tool_call>")
    assert obs.startswith('<tool_response>{"error": ') and expected in obs
    assert info["action_valid"] is False and info["metrics"]["tool_error"] is True
    assert (reward, terminated, env.state_key()) == (0.0, False, before)


def test_app_failure_is_a_valid_action_with_a_tool_error():
    env, *_ = start(SWEEP)
    bad = call("bank_transfer", from_account_id="ACC-3333", to_account_id="ACC-1111", amount=99)
    obs, _, _, _, info = env.step(tagged(bad))
    assert "insufficient funds" in obs and "40" not in obs  # errors never echo DB values
    assert info["action_valid"] is True and info["metrics"]["tool_error"] is True
    assert info["metrics"]["action_effective"] is False


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12,
)  # fmt: skip
_ENV = ToolUse()
_ENV.reset(seed=0, options={"split": "test"})


def _step_is_clean(action):
    env = _ENV
    obs, reward, terminated, truncated, info = env.step(action)
    assert isinstance(obs, str) and isinstance(info["action_valid"], bool)
    if not info["action_valid"]:
        assert reward == 0.0 and not terminated
        assert '{"error": ' in obs or obs.startswith("Invalid action: ")  # empty tag: core's
    if terminated:
        env.reset(seed=0, options={"split": "test"})
    return obs, info


@settings(max_examples=150, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(st.sampled_from(sorted(TOOLS)), st.dictionaries(st.text(max_size=20), JSON, max_size=5))
def test_random_argument_types_never_raise(name, arguments):
    obs, info = _step_is_clean(tagged({"name": name, "arguments": arguments}))
    if info["action_valid"] is False:
        assert "argument" in obs or "unknown tool" in obs


@settings(max_examples=150, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(JSON | st.text(max_size=80))
def test_random_json_never_raises(payload):
    content = payload if isinstance(payload, str) else json.dumps(payload)
    obs, info = _step_is_clean(f"<tool_call>{content}</tool_call>")
    if not isinstance(payload, dict) or "name" not in payload:
        assert info["action_valid"] is False


@settings(max_examples=80, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(st.text(min_size=1, max_size=40).filter(lambda s: s not in TOOLS))
def test_unknown_tool_names_are_named_in_the_error(name):
    obs, info = _step_is_clean(tagged({"name": name, "arguments": {}}))
    assert info["action_valid"] is False and "unknown tool" in obs


# --- Reward and call matching ------------------------------------------------------------------
def test_gold_trace_succeeds_and_reward_is_state_match():
    env, obs, info = start(SWEEP)
    assert obs == "User request: Please do the thing." and info["success"] is False
    for c in SWEEP:
        _, reward, terminated, _, info = env.step(tagged(c))
    assert (reward, terminated, info["success"]) == (1.0, True, True)
    assert info["reward_components"] == {"outcome": 1.0}
    assert info["metrics"]["state_match"] and info[CALL_MATCH]["episode_score"] == 1.0


def test_wrong_final_state_scores_zero():
    env, *_ = start(SWEEP)
    for c in SWEEP[:2]:
        env.step(tagged(c))
    wrong = call("bank_transfer", from_account_id="ACC-2222", to_account_id="ACC-1111", amount=1000)
    env.step(tagged(wrong))
    _, reward, terminated, _, info = env.step(tagged(call("finish")))
    assert (reward, terminated, info["metrics"]["state_match"]) == (0.0, True, False)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("The balance is $1,250.", 1.0), ("1250", 1.0), ("about 1200", 0.0), ("21250", 0.0)],
)
def test_answer_must_match_when_asked(answer, expected):
    env, *_ = start(QUESTION, answer="1250")
    env.step(tagged(QUESTION[0]))
    _, reward, terminated, _, info = env.step(tagged(call("finish", answer=answer)))
    assert (reward, terminated, info["metrics"]["answer_match"]) == (expected, True, bool(expected))


def test_answer_tag_is_shorthand_for_finish():
    env, *_ = start(QUESTION, answer="1250")
    env.step(tagged(QUESTION[0]))
    _, reward, terminated, _, _ = env.step("<think>got it</think><answer>$1,250</answer>")
    assert (reward, terminated) == (1.0, True)


def test_call_similarity_known_values():
    gold = call("bank_transfer", from_account_id="A", to_account_id="B", amount=5)
    exact = call_similarity("bank_transfer", dict(gold["arguments"]), gold)
    assert exact == {"name_match": True, "key_jaccard": 1.0, "arg_match": 1.0, "score": 1.0}
    partial = call_similarity("bank_transfer", {"from_account_id": "a", "amount": 6, "memo": "m"},
                              gold)  # fmt: skip
    # keys: |{from, amount}| / |{from, to, amount, memo}| = 0.5; one equal value of 3.
    assert partial["key_jaccard"] == 0.5 and partial["arg_match"] == pytest.approx(1 / 3)
    assert partial["score"] == pytest.approx((1 + 0.5 + 1) / 5)
    assert call_similarity("bank_deposit", {}, gold)["score"] == 0.0
    matched = match_calls([("finish", {}), ("bank_transfer", gold["arguments"])],
                          [gold, call("finish")])  # fmt: skip
    assert matched["assignment"] == [1, 0] and matched["mean"] == 1.0


def test_info_call_match_reports_position_and_best():
    env, *_ = start(SWEEP)
    _, _, _, _, info = env.step(tagged(SWEEP[1]))  # right call, wrong position
    match = info[CALL_MATCH]["call"]
    assert match["position"] == 0 and match["at_position"]["name_match"] is False
    assert match["best_index"] == 1 and match["best"]["score"] == 1.0
    assert info[CALL_MATCH]["episode_score"] == pytest.approx(1 / 4)
    _, _, _, _, info = env.step("no tags at all")
    assert info[CALL_MATCH]["call"] is None and info["action_valid"] is False


def test_answer_matches_tokens():
    assert answer_matches("It starts at 14:00.", "14:00")
    assert not answer_matches("It starts at 4:00.", "14:00")


# --- Snapshots, state keys, knobs, leaks, oracle ------------------------------------------------
def test_snapshot_restore_and_pickle_replay():
    env, *_ = start(SWEEP)
    env.step(tagged(SWEEP[0]))
    snapshot = env.get_state()
    first = [env.step(tagged(c))[:3] for c in SWEEP[1:]]
    env.set_state(snapshot)
    assert [env.step(tagged(c))[:3] for c in SWEEP[1:]] == first
    env.set_state(snapshot)
    clone = pickle.loads(pickle.dumps(env))
    assert [clone.step(tagged(c))[:3] for c in SWEEP[1:]] == first


def test_state_key_groups_equal_states():
    a, *_ = start(SWEEP)
    b, *_ = start(SWEEP)
    a.step(tagged(SWEEP[0]))  # a read-only call leaves the state (and key) unchanged
    assert a.state_key() == b.state_key()
    a.step(tagged(call("bank_deposit", account_id="ACC-1111", amount=5)))
    assert a.state_key() != b.state_key()
    assert a.state_key().endswith("|done=0")


def test_knobs_levels_and_bad_values():
    env = ToolUse(apps=["calendar"], distractor_tools=0)
    _, info = env.reset(seed=3, options={"split": "test"})
    assert {TOOLS[t].app for t in env.tools} == {"calendar", "core"}
    for level, (low, high) in {0: (1, 2), 2: (3, 5), 3: (5, 8)}.items():
        env = ToolUse(level=level)
        for seed in range(10):
            _, info = env.reset(seed=seed, options={"split": "test"})
            assert low <= len(info["privileged"]["gold_calls"]) - 1 <= high
    for bad in ({"apps": ["bank", "email"]}, {"apps": []}, {"goals": 0},
                {"min_calls": 5, "max_calls": 2}, {"distractor_tools": 99}):  # fmt: skip
        with pytest.raises(ValueError, match="ToolUse"):
            ToolUse(**bad)
    assert all(len(GOALS[app]) == 4 for app in GOALS)


def test_gold_answer_never_in_instructions_or_first_observation():
    env = ToolUse()
    asked = 0
    for seed in range(200):
        obs, info = env.reset(seed=seed, options={"split": "test"})
        answer = info["privileged"]["gold_answer"]
        asked += answer is not None
        assert not env.leak_check(info["instructions"]) and not env.leak_check(obs)
    assert asked > 30  # questions are common enough for the check to mean something


def _success_rate(env, policy, n):
    wins = 0
    for seed in range(n):
        env.reset(seed=seed, options={"split": "test"})
        for _ in range(20):
            *_, terminated, _, info = env.step(policy(env))
            if terminated:
                break
        wins += info["success"]
    return wins / n


def test_oracle_beats_random_on_200_test_tasks():
    env = ToolUse()
    rng = random.Random(0)
    oracle = _success_rate(env, lambda e: e.oracle_action(), 200)
    floor = _success_rate(env, lambda e: rng.choice(e.example_actions), 200)
    assert oracle >= 0.95 and floor <= 0.05


def test_turngym_check_passes():
    check_env("turngym/ToolUse-v0", fuzz_examples=30, n_tasks=10).raise_if_failed()
    assert turngym.make("turngym/ToolUse-v0").spec.max_episode_steps == 20
