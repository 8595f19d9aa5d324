"""The wire protocol of ``turngym serve``: OpenEnv's WebSocket messages plus turngym extensions.

Every message is one JSON text frame ``{"type": ..., "data": {...}}``. The shapes below match
OpenEnv's published package (``openenv`` 0.10.0 on PyPI, ``openenv/core/env_server/types.py``
and ``serialization.py``, read for this module; none of its code is used):

==========================  =======================================================================
client → server             server → client
==========================  =======================================================================
``reset`` (data: kwargs)    ``{"type": "observation", "data": {"observation": {...}, "reward": r,
``step`` (data: action)     "done": d, "metadata": {...}}}``; as in OpenEnv's
                            ``serialize_observation`` the metadata sits beside ``reward`` and
                            ``done`` inside ``data`` and is mirrored in ``observation.metadata``
``state`` (no data)         ``{"type": "state", "data": {"episode_id", "step_count", ...}}``
``close``                   (none: the server closes the socket)
anything malformed          ``{"type": "error", "data": {"message": str, "code": str, ...}}``
==========================  =======================================================================

Error codes are OpenEnv's ``WSErrorCode`` values (``INVALID_JSON``, ``UNKNOWN_TYPE``,
``VALIDATION_ERROR``, ``EXECUTION_ERROR``, ``CAPACITY_REACHED``, ``FACTORY_ERROR``,
``SESSION_ERROR``) plus one turngym code, ``MESSAGE_TOO_LARGE``. As in OpenEnv, a validation
error carries ``errors`` (pydantic's list) and a capacity error ``active_sessions`` and
``max_sessions``. When a *connection* is refused (``CAPACITY_REACHED`` on connect) or its
session ends (``SESSION_ERROR``) the server closes the socket; after every other error,
including a ``fork`` or ``snapshot`` refused with ``CAPACITY_REACHED`` (a quota: see
:mod:`turngym.server.accounting`), the socket and the session stay as they were.

**Episodes end.** Once a reply says ``done`` (terminated or truncated by the time limit), a
``step`` is refused with ``VALIDATION_ERROR`` (``episode_done: true``) and changes nothing;
send ``reset`` for the next episode (no automatic reset, so a trainer never mixes two
episodes). A ``reset`` that fails (unknown options, a refused knob value, an env that cannot be
built) leaves the session as it was, episode included.

**Frames.** A frame of more than ``max_message_bytes`` gets ``MESSAGE_TOO_LARGE`` and the socket
stays open; one of more than twice that is refused by the WebSocket layer from its header,
before its payload is read, and closes the socket (code 1009).

**Text envs on the wire.** The action is ``{"message": str}`` (OpenEnv's text envs, e.g. its
echo and TextArena envs, use the same field) and the observation ``{"text": str, "metadata":
{...}}``. ``metadata`` is the env's ``info`` dict (the per-turn record: ``task_id``,
``state_key``, ``action_valid``, ``reward_components``, ``success``, ``score``, ``metrics``,
``instructions`` after a reset) plus ``terminated`` and ``truncated``, so a trainer can tell a
time-out from an ending. ``privileged`` is always present but empty unless the server runs
with ``privileged=True``.

**turngym extensions** are extra message types; OpenEnv clients never send them:

* ``make`` ``{"env_id", "env_kwargs"}`` → ``{"type": "env", "data": EnvInfo}``: choose the env of
  this session (OpenEnv clients can instead pass ``env_id``/``env_kwargs`` to ``reset``).
* ``snapshot`` → ``{"type": "snapshot", "data": {"snapshot_id"}}``: the server keeps the env state
  and hands out an opaque id (state never leaves the server, so nothing privileged leaks and no
  client bytes are ever unpickled).
* ``restore`` ``{"snapshot_id"}`` → the observation as it was when the snapshot was taken.
* ``fork`` → ``{"type": "fork", "data": {"session_id"}}``: a copy of this session, waiting to be
  driven by a new socket on ``/ws?session_id=...`` (OpenEnv's own attach parameter).
* ``leak_check`` ``{"text"}`` → ``{"type": "leak_check", "data": {"problems": [...]}}``: the env's
  own leak check (``TextEnv.leak_check``) on a text this session sent during the current
  episode, so ``turngym check`` can run it remotely. Other texts are refused: a client must not
  be able to probe the ground truth with guesses.
* ``oracle`` → ``{"type": "oracle", "data": {"action": str}}``: the env's optimal action now
  (``TextEnv.oracle_action``), so the ``oracle`` agent plays served envs. It reads the ground
  truth, so only a server started with ``--privileged`` answers; others refuse it with
  ``VALIDATION_ERROR``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticSerializationError, to_json

__all__ = [
    "invalid_input",
    "PROTOCOL_VERSION",
    "ErrorCode",
    "ProtocolError",
    "ResetData",
    "TextAction",
    "TextObservation",
    "SessionState",
    "EnvInfo",
    "ObservationData",
    "IncomingMessage",
    "parse_message",
    "encode",
    "error_message",
    "observation_message",
    "ResetRequest",
    "StepRequest",
    "HttpObservation",
]

PROTOCOL_VERSION = 1
"""Version of the turngym extensions (the OpenEnv part follows OpenEnv)."""

_FORBID = ConfigDict(extra="forbid")
_MAX_ERRORS = 20  # validation errors listed in an error reply


class ErrorCode(str, Enum):
    """Codes of error replies: OpenEnv's ``WSErrorCode`` plus ``MESSAGE_TOO_LARGE``."""

    INVALID_JSON = "INVALID_JSON"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    EXECUTION_ERROR = "EXECUTION_ERROR"
    CAPACITY_REACHED = "CAPACITY_REACHED"
    FACTORY_ERROR = "FACTORY_ERROR"
    SESSION_ERROR = "SESSION_ERROR"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"


class ProtocolError(Exception):
    """An error to send back as an error reply (the server raises it, the client re-raises it).

    Attributes:
        code: The :class:`ErrorCode`.
        extra: Extra fields of the error's ``data`` (e.g. ``max_sessions``).
    """

    def __init__(self, code: ErrorCode, message: str, **extra: Any) -> None:
        """Create the error with its code, message and extra ``data`` fields."""
        super().__init__(message)
        self.code = code
        self.extra = extra

    @property
    def message(self) -> str:
        """The human-readable message."""
        return str(self.args[0])


# --- Payloads -----------------------------------------------------------------------------------
class ResetData(BaseModel):
    """``data`` of a ``reset`` message (and the body of ``POST /reset``).

    OpenEnv passes these as keyword arguments to the env's ``reset``; the option keys may come
    flat (``{"seed": 0, "split": "test"}``) or inside ``options``. Unknown keys are refused
    rather than silently dropped (OpenEnv drops what the env's ``reset`` does not accept).
    """

    model_config = _FORBID

    seed: int | None = Field(default=None, ge=0, description="Task seed within the split.")
    episode_id: str | None = Field(default=None, max_length=255, description="Your episode id.")
    options: dict[str, Any] | None = Field(default=None, description="Gymnasium reset options.")
    split: Literal["train", "validation", "test"] | None = None
    task: dict[str, Any] | None = Field(default=None, description="A task dict to play.")
    difficulty: dict[str, Any] | None = Field(default=None, description="Knob overrides.")
    level: int | None = Field(default=None, description="A difficulty preset.")
    env_id: str | None = Field(default=None, max_length=200,
                               description="Switch this session to another env.")
    env_kwargs: dict[str, Any] | None = Field(default=None, description="Constructor kwargs.")

    def reset_options(self) -> dict[str, Any] | None:
        """The Gymnasium ``options`` dict: ``options`` merged with the flat option keys.

        Raises:
            ProtocolError: A key given both flat and inside ``options``.
        """
        flat = {k: getattr(self, k) for k in ("split", "task", "difficulty", "level")}
        flat = {k: v for k, v in flat.items() if v is not None}
        both = sorted(flat.keys() & (self.options or {}).keys())
        if both:
            raise ProtocolError(
                ErrorCode.VALIDATION_ERROR, f"{both} given both flat and in 'options'; use one."
            )
        merged = {**(self.options or {}), **flat}
        return merged or None


class TextAction(BaseModel):
    """An action: the agent's text (``data`` of a ``step`` message)."""

    model_config = _FORBID

    message: str = Field(description="The raw action text, e.g. '<action>up</action>'.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Ignored (OpenEnv field).")


class TextObservation(BaseModel):
    """An observation. On the wire ``reward`` and ``done`` sit beside it, as in OpenEnv."""

    model_config = _FORBID

    text: str = Field(description="What the agent sees.")
    done: bool = Field(default=False, description="terminated or truncated.")
    reward: float | None = Field(default=None, description="Reward of the last action.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="The per-turn record.")


class SessionState(BaseModel):
    """``data`` of a ``state`` reply (OpenEnv's ``State``: ``episode_id``, ``step_count``)."""

    model_config = _FORBID

    episode_id: str | None = None
    step_count: int = Field(default=0, ge=0)
    env_id: str | None = None
    task_id: str | None = None
    state_key: Any = None
    done: bool = False


class EnvInfo(BaseModel):
    """What a client needs to know about a served env (``make`` reply, ``/metadata``)."""

    model_config = _FORBID

    env_id: str
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    max_episode_steps: int | None = None
    action_examples: list[str] = Field(default_factory=list)
    max_action_chars: int = 32_768
    max_observation_chars: int = 32_768


class ObservationData(BaseModel):
    """``data`` of an ``observation`` reply, exactly OpenEnv's ``serialize_observation`` shape."""

    model_config = _FORBID

    observation: dict[str, Any]
    reward: float | None = None
    done: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)


# --- Messages -----------------------------------------------------------------------------------
class _Reset(BaseModel):
    model_config = _FORBID
    type: Literal["reset"]
    data: ResetData = Field(default_factory=ResetData)


class _Step(BaseModel):
    model_config = _FORBID
    type: Literal["step"]
    data: TextAction


class _Bare(BaseModel):
    """A message whose ``data`` is empty (OpenEnv's ``state`` and ``close`` carry none)."""

    model_config = _FORBID
    data: dict[str, Any] = Field(default_factory=dict, max_length=0)


class _State(_Bare):
    type: Literal["state"]


class _Close(_Bare):
    type: Literal["close"]


class _Snapshot(_Bare):
    type: Literal["snapshot"]


class _Fork(_Bare):
    type: Literal["fork"]


class _Oracle(_Bare):
    type: Literal["oracle"]


class _MakeData(BaseModel):
    model_config = _FORBID
    env_id: str = Field(max_length=200)
    env_kwargs: dict[str, Any] = Field(default_factory=dict)


class _Make(BaseModel):
    model_config = _FORBID
    type: Literal["make"]
    data: _MakeData


class _RestoreData(BaseModel):
    model_config = _FORBID
    snapshot_id: str = Field(max_length=128)


class _Restore(BaseModel):
    model_config = _FORBID
    type: Literal["restore"]
    data: _RestoreData


class _LeakCheckData(BaseModel):
    model_config = _FORBID
    text: str


class _LeakCheck(BaseModel):
    model_config = _FORBID
    type: Literal["leak_check"]
    data: _LeakCheckData


IncomingMessage = Annotated[
    _Reset | _Step | _State | _Close | _Make | _Snapshot | _Restore | _Fork | _LeakCheck
    | _Oracle,
    Field(discriminator="type"),
]
"""Every message a client may send, discriminated by ``type``."""

_INCOMING: TypeAdapter[Any] = TypeAdapter(IncomingMessage)
MESSAGE_TYPES = ("reset", "step", "state", "close", "make", "snapshot", "restore", "fork",
                 "leak_check", "oracle")  # fmt: skip


def parse_message(raw: str | bytes) -> Any:
    """Parse and validate one client frame (JSON parsing and validation in one pass).

    Returns:
        One of the message models; ``.type`` names it, ``.data`` holds its payload.

    Raises:
        ProtocolError: ``INVALID_JSON``, ``UNKNOWN_TYPE`` (a missing or unknown ``type``, as in
            OpenEnv) or ``VALIDATION_ERROR`` (with pydantic's ``errors``).

    Example:
        >>> parse_message('{"type": "step", "data": {"message": "<action>up</action>"}}').data
        TextAction(message='<action>up</action>', metadata={})
        >>> parse_message('{"type": "jump"}')
        Traceback (most recent call last):
        ...
        turngym.server.protocol.ProtocolError: Unknown message type: 'jump'; expected one of ...
    """
    try:
        return _INCOMING.validate_json(raw)
    except ValidationError as err:
        raise _classify(err, raw) from None


def _classify(err: ValidationError, raw: str | bytes) -> ProtocolError:
    errors = err.errors(include_url=False, include_context=False, include_input=False)
    kinds = {e["type"] for e in errors}
    if "json_invalid" in kinds:
        return ProtocolError(ErrorCode.INVALID_JSON, f"Invalid JSON: {errors[0]['msg']}")
    if kinds & {"union_tag_invalid", "union_tag_not_found"}:
        try:
            kind = json.loads(raw).get("type", "")
        except Exception:  # unreachable in practice: the JSON itself parsed above
            kind = ""
        return ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            f"Unknown message type: {kind!r}; expected one of {', '.join(MESSAGE_TYPES)}",
        )
    return invalid_input("Invalid message", errors)


def invalid_input(message: str, errors: Sequence[Mapping[str, Any]]) -> ProtocolError:
    """``VALIDATION_ERROR`` listing the first few of pydantic's ``errors`` (type, loc, msg).

    The first few say what is wrong; all of them, or the input they quote, could be far larger
    than the message itself, so neither is sent back.
    """
    listed = [{"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": e.get("msg")}
              for e in errors[:_MAX_ERRORS]]  # fmt: skip
    return ProtocolError(ErrorCode.VALIDATION_ERROR, message, errors=listed,
                         error_count=len(errors))  # fmt: skip


# --- Encoding -----------------------------------------------------------------------------------
def _fallback(value: Any) -> Any:
    """JSON form of what pydantic cannot serialise (numpy values, sets, anything else: repr)."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return repr(value)


class _Envelope(BaseModel):
    type: str
    data: Any


def encode(kind: str, data: BaseModel | dict[str, Any]) -> str:
    """Serialise one server message ``{"type": kind, "data": data}`` to JSON text.

    Values JSON cannot hold are converted (numpy to lists/numbers, anything else to its
    ``repr``); text that UTF-8 cannot carry (lone surrogates) is escaped.
    """
    if isinstance(data, ObservationData):  # the hot path: a plain dict, no envelope model
        fields = {"observation": data.observation, "reward": data.reward, "done": data.done,
                  "metadata": data.metadata}  # fmt: skip
        message: Any = {"type": kind, "data": fields}
        try:
            return to_json(message, fallback=_fallback, inf_nan_mode="null").decode()
        except PydanticSerializationError:  # lone surrogates: let json escape them
            return json.dumps(message, ensure_ascii=True, default=_fallback)
    envelope = _Envelope(type=kind, data=data)
    try:
        return envelope.model_dump_json(fallback=_fallback)
    except PydanticSerializationError:  # lone surrogates: let json escape them as \\udXXX
        plain = envelope.model_dump(mode="python")
        return json.dumps(plain, ensure_ascii=True, default=_fallback)


def error_message(err: ProtocolError) -> str:
    """The error reply for ``err``."""
    return encode("error", {"message": err.message, "code": err.code.value, **err.extra})


def observation_message(data: ObservationData) -> str:
    """The ``observation`` reply."""
    return encode("observation", data)


# --- HTTP (OpenEnv's ResetResponse / StepRequest / StepResponse) -------------------------------
class ResetRequest(ResetData):
    """Body of ``POST /reset``: the ``reset`` data."""


class StepRequest(BaseModel):
    """Body of ``POST /step``: OpenEnv's fields plus the snapshot the step continues from."""

    model_config = _FORBID

    action: TextAction
    snapshot_id: str | None = Field(
        default=None, max_length=128,
        description="metadata.snapshot_id of the previous /reset or /step reply.",
    )  # fmt: skip
    timeout_s: float | None = Field(default=None, gt=0, description="Ignored (OpenEnv field).")
    request_id: str | None = Field(default=None, max_length=255)


class HttpObservation(BaseModel):
    """Reply of ``POST /reset`` and ``POST /step`` (OpenEnv's ``ResetResponse``)."""

    model_config = _FORBID

    observation: dict[str, Any]
    reward: float | None = None
    done: bool = False
    metadata: dict[str, Any] | None = None
