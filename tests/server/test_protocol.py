"""The wire format on its own: message parsing, error classification, encoding, URLs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from turngym.registry import is_remote_id
from turngym.server._connection import base_url, ws_url
from turngym.server.client import split_remote_id
from turngym.server.handlers import observation_data
from turngym.server.protocol import (
    ErrorCode,
    ProtocolError,
    ResetData,
    encode,
    error_message,
    parse_message,
)


@pytest.mark.parametrize(
    "message",
    [
        {"type": "reset", "data": {"seed": 3, "split": "test", "episode_id": "e1"}},
        {"type": "reset"},
        {"type": "step", "data": {"message": "<action>up</action>"}},
        {"type": "step", "data": {"message": "x", "metadata": {}}},  # a typed OpenEnv action
        {"type": "state"},
        {"type": "state", "data": {}},
        {"type": "close"},
        {"type": "make", "data": {"env_id": "turngym/Sokoban-v0", "env_kwargs": {"size": 6}}},
        {"type": "snapshot"},
        {"type": "restore", "data": {"snapshot_id": "abc"}},
        {"type": "fork", "data": {}},
        {"type": "leak_check", "data": {"text": "hello"}},
    ],
)
def test_every_message_type_parses(message):
    parsed = parse_message(json.dumps(message))
    assert parsed.type == message["type"]
    assert parse_message(json.dumps(message).encode()).type == message["type"]  # binary frames


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", ErrorCode.INVALID_JSON),
        ("", ErrorCode.INVALID_JSON),
        ('{"type": "jump", "data": {}}', ErrorCode.UNKNOWN_TYPE),
        ('{"data": {}}', ErrorCode.UNKNOWN_TYPE),  # OpenEnv: a missing type is an unknown one
        ("[1, 2]", ErrorCode.VALIDATION_ERROR),  # OpenEnv closes the socket here; we reply
        ('{"type": "step", "data": {"msg": "up"}}', ErrorCode.VALIDATION_ERROR),
        ('{"type": "step"}', ErrorCode.VALIDATION_ERROR),
        ('{"type": "reset", "data": {"seed": -1}}', ErrorCode.VALIDATION_ERROR),
        ('{"type": "reset", "data": {"sed": 1}}', ErrorCode.VALIDATION_ERROR),
        ('{"type": "state", "data": {"x": 1}}', ErrorCode.VALIDATION_ERROR),
        ('{"type": "step", "data": {"message": "x"}, "extra": 1}', ErrorCode.VALIDATION_ERROR),
    ],
)
def test_malformed_frames_are_classified_like_openenv(raw, code):
    with pytest.raises(ProtocolError) as caught:
        parse_message(raw)
    assert caught.value.code is code
    reply = json.loads(error_message(caught.value))
    assert reply["type"] == "error" and reply["data"]["code"] == code.value
    assert reply["data"]["message"]
    if code is ErrorCode.VALIDATION_ERROR:
        assert reply["data"]["errors"] and "input" not in reply["data"]["errors"][0]


def test_reset_options_merge_flat_keys_and_refuse_duplicates():
    data = ResetData(seed=1, split="test", options={"level": 2})
    assert data.reset_options() == {"level": 2, "split": "test"}
    assert ResetData().reset_options() is None
    with pytest.raises(ProtocolError, match="both flat and in 'options'"):
        ResetData(split="test", options={"split": "train"}).reset_options()


def test_observation_data_mirrors_metadata_and_hides_privileged():
    info = {"task_id": "t", "state_key": "k", "privileged": {"answer": "42"}}
    data = observation_data("obs", 0.5, False, True, info, privileged=False)
    wire = json.loads(encode("observation", data))
    assert wire == {
        "type": "observation",
        "data": {
            "observation": {"text": "obs", "metadata": wire["data"]["metadata"]},
            "reward": 0.5,
            "done": True,
            "metadata": {"task_id": "t", "state_key": "k", "privileged": {},
                         "terminated": False, "truncated": True},  # fmt: skip
        },
    }
    shown = observation_data("obs", None, False, False, info, privileged=True)
    assert shown.metadata["privileged"] == {"answer": "42"} and shown.reward is None
    assert info["privileged"] == {"answer": "42"}  # the env's own dict is not modified


def test_encode_handles_values_json_cannot_hold():
    payload = {"a": np.float32(1.5), "b": np.arange(3), "c": {3, 1}, "d": object(),
               "e": "lone \udc80 surrogate"}  # fmt: skip
    decoded = json.loads(encode("state", payload))["data"]
    assert decoded["a"] == 1.5 and decoded["b"] == [0, 1, 2] and decoded["c"] == [1, 3]
    assert decoded["d"].startswith("<object") and decoded["e"] == "lone \udc80 surrogate"


def test_urls_and_remote_ids():
    assert base_url("ws://h:1/ws") == base_url("http://h:1/") == "http://h:1"
    assert base_url("wss://h/prefix/ws") == "https://h/prefix"
    assert ws_url("https://h:2") == "wss://h:2/ws"
    assert ws_url("http://h:2", session_id="a b") == "ws://h:2/ws?session_id=a+b"
    with pytest.raises(ValueError, match="scheme"):
        base_url("ftp://h")
    assert split_remote_id("x/Y-v0@http://h:3") == ("x/Y-v0", "http://h:3")
    assert split_remote_id("Y-v0@http://u:p@h") == ("Y-v0", "http://u:p@h")  # first @ splits
    assert is_remote_id("x/Y-v0@ws://h") and not is_remote_id("pkg.mod:Y-v0")
    with pytest.raises(ValueError, match="ENV_ID@URL"):
        split_remote_id("x/Y-v0")
