"""Where turn-level credit meets tokens (docs/design.md#credit-assignment-and-training).

Credit estimators output one advantage per turn (per token only where a method's unit is finer
than a turn). This module is the single place that turns those numbers into training
sequences: it lays out the tokens of each :class:`~turngym.types.TokenTrace`, masks prompt and
observation tokens (they receive no gradient, docs/methods.md#conventions), writes each
turn's advantage onto its action tokens and carries the sampling log-probabilities along for the
PPO ratio (docs/methods.md#clipped-surrogate).

Two layouts:

* ``mode="turn"``: one sequence per turn, ``prompt_ids + completion_ids``. Always valid.
* ``mode="episode"``: one sequence per episode, ``prompt_0, completion_0, obs_1, completion_1,
  ...`` where ``obs_{t+1}`` is what ``prompt_{t+1}`` adds after ``prompt_t + completion_t``.
  Cheaper (the shared history is encoded once) but only exact when every prompt extends the
  previous prompt and completion token for token; episodes where that fails (history windows,
  chat templates that re-render past turns) fall back to the turn layout and are counted.

:func:`collate` pads sequences into tensors; torch is imported only there, so building
sequences needs numpy alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from turngym.types import Episode, TokenTrace

if TYPE_CHECKING:
    import torch

__all__ = ["TrainingSequence", "build_sequences", "collate"]

_MODES = ("turn", "episode")


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingSequence:
    """One row of a training batch: tokens, which of them train, and their credit.

    All per-token tuples have the length of ``input_ids`` and position ``j`` refers to token
    ``j`` (no shift: ``old_logprobs[j]`` is the log-probability the sampler gave token ``j``).

    Attributes:
        input_ids: Token ids of the whole sequence (prompt, actions, observations).
        loss_mask: 1 on trainable action tokens, 0 on prompt and observation tokens.
        advantages: Advantage of each token; 0 where ``loss_mask`` is 0.
        old_logprobs: Sampling log-probability of each action token from the TokenTrace; 0 where
            ``loss_mask`` is 0 and where the trace had none (see ``has_old_logprobs``).
        prompt_length: Number of leading tokens that form the prompt of the first turn. All of
            them are masked; sequences with equal ``input_ids[:prompt_length]`` can share one
            prefix forward (:func:`turngym.trainers.policy.group_by_prefix`).
        episode_index: Index of the source episode in the list given to :func:`build_sequences`.
        turn_indices: Turn positions (in ``episode.turns``) whose actions this sequence trains.
        clip_low: Per-token lower clip epsilon (ratio clipped below at ``1 - clip_low``), or
            ``None`` to use the loss's default. 0 where masked.
        clip_high: Per-token upper clip epsilon (ratio clipped above at ``1 + clip_high``), or
            ``None``. 0 where masked.
        weight: Loss weight of the whole sequence.
        has_old_logprobs: False when some trace of this sequence had no log-probabilities; the
            trainer must then recompute ``old_logprobs`` with the current policy before updating.
    """

    input_ids: tuple[int, ...]
    loss_mask: tuple[int, ...]
    advantages: tuple[float, ...]
    old_logprobs: tuple[float, ...]
    prompt_length: int
    episode_index: int
    turn_indices: tuple[int, ...]
    clip_low: tuple[float, ...] | None = None
    clip_high: tuple[float, ...] | None = None
    weight: float = 1.0
    has_old_logprobs: bool = True

    def __post_init__(self) -> None:
        n = len(self.input_ids)
        per_token = {
            "loss_mask": self.loss_mask,
            "advantages": self.advantages,
            "old_logprobs": self.old_logprobs,
            "clip_low": self.clip_low,
            "clip_high": self.clip_high,
        }
        for name, values in per_token.items():
            if values is not None and len(values) != n:
                raise ValueError(
                    f"TrainingSequence.{name} has {len(values)} entries but input_ids has {n}; "
                    "every per-token field needs one entry per token."
                )
        if (self.clip_low is None) != (self.clip_high is None):
            raise ValueError("Give both clip_low and clip_high, or neither.")
        if not 0 <= self.prompt_length <= n:
            raise ValueError(f"prompt_length {self.prompt_length} is outside [0, {n}].")
        if any(self.loss_mask[: self.prompt_length]):
            raise ValueError("Prompt tokens must be masked (loss_mask 0 before prompt_length).")

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def num_trainable(self) -> int:
        """Number of tokens with ``loss_mask == 1``."""
        return int(sum(self.loss_mask))


@dataclass(slots=True)
class _Piece:
    """One traced turn with its per-token credit, before it is laid out."""

    turn: int
    trace: TokenTrace
    advantages: list[float]
    clip: tuple[float, float] | None
    weight: float


def _finite(values: np.ndarray, what: str) -> np.ndarray:
    # A NaN advantage would silently poison every gradient of the batch; fail where it enters.
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} contains NaN or inf: {values.tolist()}")
    return values


def _per_turn(data: Any, e: int, n_turns: int, what: str, width: int | None = None) -> np.ndarray:
    """Return ``data[e]`` as a float array with one row per turn, or raise a clear error."""
    arr = np.asarray(data[e], dtype=np.float64)
    want = (n_turns,) if width is None else (n_turns, width)
    if arr.shape != want:
        raise ValueError(
            f"{what}[{e}] has shape {arr.shape} but episode {e} has {n_turns} turns; "
            f"expected shape {want}."
        )
    return _finite(arr, f"{what}[{e}]")


def _pieces(
    episode: Episode,
    e: int,
    turn_advantages: Sequence[Any],
    token_advantages: Sequence[Any] | None,
    clip_ranges: Sequence[Any] | None,
    weights: Sequence[Any] | None,
    strict: bool,
) -> tuple[list[_Piece], int]:
    """Collect the traced turns of one episode with their credit; count untraced turns."""
    n = episode.num_turns
    adv = _per_turn(turn_advantages, e, n, "turn_advantages")
    clips = None if clip_ranges is None else _per_turn(clip_ranges, e, n, "clip_ranges", 2)
    wts = None if weights is None else _per_turn(weights, e, n, "weights")
    tok = None if token_advantages is None else token_advantages[e]
    if tok is not None and len(tok) != n:
        raise ValueError(f"token_advantages[{e}] has {len(tok)} entries for {n} turns.")
    pieces: list[_Piece] = []
    missing = 0
    for t, turn in enumerate(episode.turns):
        if turn.trace is None:
            if strict:
                raise ValueError(
                    f"Turn {t} of episode {episode.episode_id!r} has no TokenTrace; use a policy "
                    "agent that records traces, or pass strict=False to skip such turns."
                )
            missing += 1
            continue
        n_tok = len(turn.trace.completion_ids)
        if tok is not None and tok[t] is not None:
            values = _finite(np.asarray(tok[t], dtype=np.float64), f"token_advantages[{e}][{t}]")
            if values.shape != (n_tok,):
                raise ValueError(
                    f"token_advantages[{e}][{t}] has shape {values.shape} but the turn has "
                    f"{n_tok} completion tokens."
                )
            per_token = values.tolist()
        else:
            per_token = [float(adv[t])] * n_tok
        clip = None if clips is None else (float(clips[t, 0]), float(clips[t, 1]))
        weight = 1.0 if wts is None else float(wts[t])
        pieces.append(_Piece(t, turn.trace, per_token, clip, weight))
    return pieces, missing


def _old_logprobs(trace: TokenTrace) -> list[float]:
    if trace.logprobs is None:
        return [0.0] * len(trace.completion_ids)
    return [float(x) for x in trace.logprobs]


def _layout(
    e: int, prompt: Sequence[int], segments: Sequence[tuple[Sequence[int], _Piece]], weight: float
) -> TrainingSequence:
    """Lay out ``prompt`` then, per segment, masked observation tokens and the piece's action."""
    ids = list(prompt)
    mask = [0] * len(ids)
    adv = [0.0] * len(ids)
    old = [0.0] * len(ids)
    with_clip = segments[0][1].clip is not None
    low = [0.0] * len(ids)
    high = [0.0] * len(ids)
    for observation, piece in segments:
        n_obs, n_act = len(observation), len(piece.trace.completion_ids)
        ids += list(observation) + list(piece.trace.completion_ids)
        mask += [0] * n_obs + [1] * n_act
        adv += [0.0] * n_obs + piece.advantages
        old += [0.0] * n_obs + _old_logprobs(piece.trace)
        if with_clip:
            assert piece.clip is not None
            low += [0.0] * n_obs + [piece.clip[0]] * n_act
            high += [0.0] * n_obs + [piece.clip[1]] * n_act
    return TrainingSequence(
        input_ids=tuple(ids),
        loss_mask=tuple(mask),
        advantages=tuple(adv),
        old_logprobs=tuple(old),
        prompt_length=len(prompt),
        episode_index=e,
        turn_indices=tuple(piece.turn for _, piece in segments),
        clip_low=tuple(low) if with_clip else None,
        clip_high=tuple(high) if with_clip else None,
        weight=weight,
        has_old_logprobs=all(piece.trace.logprobs is not None for _, piece in segments),
    )


def _observations(pieces: Sequence[_Piece]) -> list[tuple[int, ...]] | None:
    """Observation tokens between consecutive turns, or None if the traces are not nested."""
    observations: list[tuple[int, ...]] = [()]
    for prev, cur in zip(pieces, pieces[1:], strict=False):
        history = prev.trace.prompt_ids + prev.trace.completion_ids
        if cur.trace.prompt_ids[: len(history)] != history:
            return None
        observations.append(cur.trace.prompt_ids[len(history) :])
    return observations


_STAT_KEYS = (
    "episodes",
    "turns",
    "turns_used",
    "turns_without_trace",
    "turns_without_logprobs",
    "empty_completions",
    "episode_fallbacks",
    "weight_fallbacks",
)


def _check_inputs(n_episodes: int, mode: str, *per_episode: Sequence[Any] | None) -> None:
    """Raise a clear error for an unknown mode or credit lists of the wrong length."""
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}.")
    names = ("turn_advantages", "token_advantages", "clip_ranges", "weights")
    for name, values in zip(names, per_episode, strict=True):
        if values is not None and len(values) != n_episodes:
            raise ValueError(f"{name} has {len(values)} entries for {n_episodes} episodes.")


def build_sequences(
    episodes: Sequence[Episode],
    turn_advantages: Sequence[Any],
    *,
    token_advantages: Sequence[Sequence[Any] | None] | None = None,
    mode: str = "turn",
    clip_ranges: Sequence[Any] | None = None,
    weights: Sequence[Any] | None = None,
    strict: bool = False,
) -> tuple[list[TrainingSequence], dict[str, int]]:
    """Build training sequences from episodes and their turn-level credit.

    Args:
        episodes: Episodes whose turns carry TokenTraces.
        turn_advantages: ``turn_advantages[e][t]`` is the advantage of turn ``t`` of episode
            ``e`` (one array-like per episode, of length ``episodes[e].num_turns``).
        token_advantages: Optional per-token advantages: ``token_advantages[e][t]`` is an
            array with one value per completion token of that turn; it replaces the broadcast
            turn advantage. ``token_advantages[e]`` or ``token_advantages[e][t]`` may be None.
        mode: ``"turn"`` (one sequence per turn) or ``"episode"`` (one per episode when the
            traces are prefix-consistent, else per turn for that episode).
        clip_ranges: Optional per-turn clip epsilons, ``clip_ranges[e]`` of shape
            ``(num_turns, 2)`` holding ``(eps_low, eps_high)`` (A^2TGPO); written per token.
        weights: Optional per-turn loss weights, ``weights[e]`` of length ``num_turns``. In
            episode mode an episode whose traced turns have different weights is laid out per
            turn, since a sequence carries one weight.
        strict: Raise on a turn without a TokenTrace instead of skipping and counting it.

    Returns:
        ``(sequences, stats)``. Sequences come in episode order, then turn order. ``stats`` counts
        ``episodes``, ``turns``, ``turns_used``, ``turns_without_trace``,
        ``turns_without_logprobs``, ``empty_completions`` (turn-layout turns with no completion
        tokens, skipped), ``episode_fallbacks`` (episodes laid out per turn because the traces
        are not prefix-consistent), ``weight_fallbacks`` (same, because of unequal weights),
        ``sequences``, ``tokens`` and ``trainable_tokens``.

    Raises:
        ValueError: Unknown mode, credit arrays whose shapes do not match the turns, NaN or inf
            credit, or (with ``strict=True``) a turn without a trace.

    Example:
        >>> from turngym.types import Episode, TokenTrace, Turn
        >>> turn = Turn(0, "agent", "obs", "act", 1.0, True, False, None, True,
        ...             trace=TokenTrace((5, 6), (7, 8), (-0.1, -0.2)))
        >>> ep = Episode("e", "env-v0", "task", 0, "train", (turn,), 1.0, True)
        >>> (seq,), stats = build_sequences([ep], [[0.5]])
        >>> seq.input_ids, seq.loss_mask, seq.advantages
        ((5, 6, 7, 8), (0, 0, 1, 1), (0.0, 0.0, 0.5, 0.5))
    """
    _check_inputs(len(episodes), mode, turn_advantages, token_advantages, clip_ranges, weights)
    stats = dict.fromkeys(_STAT_KEYS, 0)
    sequences: list[TrainingSequence] = []
    for e, episode in enumerate(episodes):
        pieces, missing = _pieces(
            episode, e, turn_advantages, token_advantages, clip_ranges, weights, strict
        )
        stats["episodes"] += 1
        stats["turns"] += episode.num_turns
        stats["turns_without_trace"] += missing
        stats["turns_without_logprobs"] += sum(p.trace.logprobs is None for p in pieces)
        sequences += _episode_sequences(e, pieces, mode, stats)
    stats["turns_used"] = sum(len(s.turn_indices) for s in sequences)
    stats["sequences"] = len(sequences)
    stats["tokens"] = sum(len(s) for s in sequences)
    stats["trainable_tokens"] = sum(s.num_trainable for s in sequences)
    return sequences, stats


def _episode_sequences(
    e: int, pieces: list[_Piece], mode: str, stats: dict[str, int]
) -> list[TrainingSequence]:
    """Lay out one episode in ``mode``, falling back to per-turn sequences when needed."""
    if not pieces:
        return []
    if mode == "episode":
        observations = _observations(pieces)
        same_weight = len({p.weight for p in pieces}) == 1
        if observations is not None and same_weight:
            segments = list(zip(observations, pieces, strict=True))
            return [_layout(e, pieces[0].trace.prompt_ids, segments, pieces[0].weight)]
        stats["episode_fallbacks" if observations is None else "weight_fallbacks"] += 1
    out = []
    for piece in pieces:
        if not piece.trace.completion_ids:
            stats["empty_completions"] += 1
            continue
        out.append(_layout(e, piece.trace.prompt_ids, [((), piece)], piece.weight))
    return out


def collate(
    sequences: Sequence[TrainingSequence],
    pad_id: int,
    *,
    device: torch.device | str | None = None,
) -> dict[str, torch.Tensor]:
    """Right-pad sequences into a batch of tensors.

    Position ``j`` of every per-token tensor refers to token ``j`` of ``input_ids``; the shift
    that aligns a token with the logits that predict it happens in
    :func:`turngym.trainers.policy.token_logprobs`.

    Args:
        sequences: The sequences to batch (at least one).
        pad_id: Token id written into padding positions (they are masked everywhere).
        device: Where to put the tensors (default: CPU).

    Returns:
        ``input_ids`` and ``attention_mask`` (int64, ``(B, T)``); ``loss_mask``,
        ``advantages`` and ``old_logprobs`` (float32, ``(B, T)``, 0 on padding); ``weights``
        (float32, ``(B,)``), ``prompt_lengths`` (int64, ``(B,)``), ``has_old_logprobs``
        (bool, ``(B,)``); and ``clip_low``/``clip_high`` (float32, ``(B, T)``) when the
        sequences carry clip ranges.

    Raises:
        ValueError: No sequences, or some but not all sequences carry clip ranges.
    """
    import torch

    if not sequences:
        raise ValueError("collate needs at least one sequence.")
    with_clip = {s.clip_low is not None for s in sequences}
    if len(with_clip) > 1:
        raise ValueError(
            "Some sequences carry clip ranges and some do not; build them all with or all "
            "without clip_ranges."
        )
    width = max(len(s) for s in sequences)
    fields = ["loss_mask", "advantages", "old_logprobs"]
    fields += ["clip_low", "clip_high"] if with_clip.pop() else []
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    attention = np.zeros((len(sequences), width), dtype=np.int64)
    floats = {name: np.zeros((len(sequences), width), dtype=np.float32) for name in fields}
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq.input_ids
        attention[row, : len(seq)] = 1
        for name in fields:
            floats[name][row, : len(seq)] = getattr(seq, name)
    batch = {"input_ids": ids, "attention_mask": attention, **floats}
    batch["weights"] = np.array([s.weight for s in sequences], dtype=np.float32)
    batch["prompt_lengths"] = np.array([s.prompt_length for s in sequences], dtype=np.int64)
    batch["has_old_logprobs"] = np.array([s.has_old_logprobs for s in sequences], dtype=bool)
    return {name: torch.from_numpy(value).to(device) for name, value in batch.items()}
