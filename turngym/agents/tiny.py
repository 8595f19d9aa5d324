r"""Tiny randomly initialised language models for tests and CPU benchmarks, fully offline.

:func:`build_tiny` returns a small ``LlamaForCausalLM`` and a word-level tokenizer whose
vocabulary is every token an env's texts use (agent ``tiny:<family>``, docs/design.md#agents).
Nothing is downloaded: the tokenizer is built with the ``tokenizers`` library from words
collected by playing random episodes (:func:`env_vocabulary`), and the weights are drawn from
a local ``torch.Generator``.

Tokenisation (:func:`split_words`):

* tags such as ``<action>``, ``</action>`` or ``<think>`` are single tokens;
* a word is an optional capital followed by lowercase letters or digits (``Walk``, ``down``,
  ``10``); any other capital stands alone, so grid rows such as ``PO__`` split into cells;
* every other character (grid symbols ``_ # ? √``, punctuation) and the newline ``\n`` is
  a token of its own;
* whitespace splits tokens; a space is kept as a ``▁`` marker glued to the start of the next
  token (as SentencePiece does), so ``decode(encode(text)) == text`` whenever ``text`` has no
  unknown token (tabs become spaces). Actions such as ``<action>down</action>`` and grids
  therefore round-trip exactly.

Example:
    >>> model, tokenizer = build_tiny(["<action>", "down", "</action>"], d_model=16, n_heads=2)
    >>> ids = tokenizer.encode("<action>down</action>", add_special_tokens=False)
    >>> tokenizer.decode(ids)
    '<action>down</action>'
"""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Iterable, Sequence
from typing import Any

import gymnasium
import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from turngym.agents.scripted import RandomAgent, ScriptedAgent
from turngym.envs.multiagent.registry import is_multiagent, make_multiagent
from turngym.registry import (
    UnknownNameError,
    env_registry,
    import_string,
    make,
)
from turngym.rollout import collect

__all__ = [
    "SPECIAL_TOKENS",
    "ROLE_TOKENS",
    "CHAT_TEMPLATE",
    "split_words",
    "env_vocabulary",
    "build_tokenizer",
    "resolve_env_id",
    "build_tiny",
]

SPECIAL_TOKENS: dict[str, str] = {
    "pad_token": "<pad>",
    "unk_token": "<unk>",
    "bos_token": "<bos>",
    "eos_token": "<eos>",
}
"""The tokenizer's special tokens by role; they take ids 0-3 in this order."""

ROLE_TOKENS: tuple[str, ...] = ("<|system|>", "<|user|>", "<|assistant|>")
"""Chat role markers (special tokens, ids 4-6) used by :data:`CHAT_TEMPLATE`."""

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' }}\n{{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""Jinja chat template: ``<bos>``, then ``<|role|>\\ncontent\\n`` per message."""

# Tokens every tiny vocabulary holds even if an env's texts never use them.
_BASE_WORDS = ("<action>", "</action>", "<think>", "</think>", "\n")
_SPACE = "▁"
_TOKEN_PATTERN = (
    rf"{_SPACE}?(?:</?[A-Za-z_][A-Za-z0-9_]*>"  # a tag
    r"|\p{Lu}?[\p{Ll}\p{N}]+"  # a word: optional capital, then lowercase letters or digits
    r"|\p{Lu}|\p{L}"  # a lone capital (grid cell) or another letter (e.g. CJK)
    rf"|\n|[^\s\p{{L}}\p{{N}}{_SPACE}])"  # newline, or one symbol
)
# Invalid actions the tiny model will produce all the time: their feedback texts belong in
# the vocabulary, so the vocabulary pass plays one episode of them per split.
_INVALID_ACTIONS = ("<action>?</action>", "?")


def _normalizer() -> normalizers.Normalizer:
    # Tabs and other blanks become spaces; the newline stays (it is a token of its own).
    return normalizers.Replace(Regex(r"[^\S\n]"), " ")


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    # Metaspace turns each space into a marker on the next piece; Split then isolates tags,
    # words and symbols inside every piece (unmatched runs such as a lone marker stay pieces).
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=_SPACE, prepend_scheme="never", split=True),
            pre_tokenizers.Split(Regex(_TOKEN_PATTERN), behavior="isolated"),
        ]
    )


@functools.lru_cache(maxsize=1)
def _splitters() -> tuple[normalizers.Normalizer, pre_tokenizers.PreTokenizer]:
    return _normalizer(), _pre_tokenizer()


def split_words(text: str) -> list[str]:
    r"""Split ``text`` into the tokens the tiny tokenizer uses (before the vocabulary lookup).

    Args:
        text: Any text.

    Returns:
        The tokens in order; a space before a token shows as a leading ``▁``.

    Example:
        >>> split_words("Go <action>down</action>\nPO_")
        ['Go', '▁<action>', 'down', '</action>', '\n', 'P', 'O', '_']
    """
    normalizer, pre_tokenizer = _splitters()
    return [piece for piece, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))]


def _episode_texts(
    env_id: str, agent: Any, tasks: list[int], split: str, options: dict
) -> list[str]:
    groups = collect(env_id, agent, tasks=tasks, split=split, options=options)
    texts: list[str] = []
    for group in groups:
        for episode in group.episodes:
            for turn in episode.turns:
                texts += [turn.observation, turn.action]
            if episode.error is not None:
                raise RuntimeError(
                    f"{env_id}: episode {episode.episode_id} failed: {episode.error}"
                )
    return texts


def _instruction_texts(env_id: str, tasks: list[int], split: str, options: dict) -> list[str]:
    # Episodes do not record the instructions; a reset per task reads them (every seat's, in
    # a multi-agent game).
    if is_multiagent(env_id):
        game = make_multiagent(env_id)
        texts = []
        try:
            for seed in tasks:
                game.reset(seed=seed, options={"split": split, **options})
                texts += [str(game.infos[s].get("instructions", "")) for s in game.possible_agents]
        finally:
            game.close()
        return texts
    env = make(env_id, disable_env_checker=True)
    texts = []
    try:
        for seed in tasks:
            _, info = env.reset(seed=seed, options={"split": split, **options})
            texts.append(str(info.get("instructions", "")))
    finally:
        env.close()
    return texts


def _examples_and_levels(env_id: str) -> tuple[tuple[str, ...], list[int]]:
    """An env's example actions and its level presets (a multi-agent game's too)."""
    if is_multiagent(env_id):
        game = make_multiagent(env_id)
        game.close()
        return tuple(game.example_actions), sorted(game.levels)
    env = make(env_id, disable_env_checker=True)
    examples = tuple(getattr(env.action_space, "examples", ()) or ())
    levels = sorted(getattr(env.unwrapped, "levels", {}) or {})
    env.close()
    return examples, levels


@functools.lru_cache(maxsize=16)
def _vocabulary(env_id: str, episodes: int, seed: int) -> tuple[str, ...]:
    examples, levels = _examples_and_levels(env_id)
    configs: list[dict[str, Any]] = [{}]
    configs += [{"level": level} for level in levels]
    per_config = max(1, math.ceil(episodes / len(configs)))
    texts: list[str] = list(_BASE_WORDS) + list(examples)
    for split in ("train", "test"):
        for options in configs:
            tasks = list(range(seed, seed + per_config))
            texts += _instruction_texts(env_id, tasks, split, options)
            texts += _episode_texts(env_id, RandomAgent(seed=seed), tasks, split, options)
        invalid = ScriptedAgent(_INVALID_ACTIONS)
        texts += _episode_texts(env_id, invalid, [seed], split, {})
    words = {word for text in texts for word in split_words(text)}
    # A word seen after a space may also start a line or follow a tag: add it bare too.
    words |= {word[1:] for word in words if word.startswith(_SPACE) and len(word) > 1}
    words |= set(_BASE_WORDS)
    return tuple(sorted(words))


def env_vocabulary(env_id: str, *, episodes: int = 50, seed: int = 0) -> list[str]:
    r"""Collect every token of an env's instructions, observations and actions.

    Plays random episodes (:class:`~turngym.agents.RandomAgent` through
    :func:`~turngym.rollout.collect`) on the train and test splits, spread over the default
    difficulty and every level of :attr:`~turngym.core.TextEnv.levels`, plus one episode of
    invalid actions per split (their feedback is what an untrained model sees most). The
    tags ``<action>``, ``</action>``, ``<think>``, ``</think>`` and ``\n`` are always in.
    A multi-agent game is played in self-play, so every seat's texts are in.

    Args:
        env_id: A registered env id, e.g. ``"turngym/FrozenLake-v0"``, or a multi-agent one
            (``"turngym/TicTacToe-v0"``).
        episodes: Random episodes per split, spread over the difficulty configurations.
        seed: Selects the tasks (seeds ``seed .. seed + n - 1``) and the random actions.

    Returns:
        The distinct tokens (see :func:`split_words`), sorted; the same arguments give the
        same list in any process.

    Raises:
        ValueError: ``episodes`` is below 1.
        RuntimeError: An episode failed (the env's error is in the message).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    return list(_vocabulary(env_id, int(episodes), int(seed)))


def build_tokenizer(words: Iterable[str], *, max_length: int = 2048) -> PreTrainedTokenizerFast:
    """Build the word-level tokenizer over ``words`` (see the module docstring).

    Args:
        words: Vocabulary tokens as :func:`split_words` produces them; duplicates and the
            special tokens are dropped, the rest keep their order after the special tokens.
        max_length: The tokenizer's ``model_max_length``.

    Returns:
        A ``PreTrainedTokenizerFast`` with ``<pad>`` ``<unk>`` ``<bos>`` ``<eos>``, the role
        markers of :data:`ROLE_TOKENS`, :data:`CHAT_TEMPLATE` and left padding.
    """
    specials = [*SPECIAL_TOKENS.values(), *ROLE_TOKENS]
    vocab: dict[str, int] = {}
    for word in [*specials, *words]:
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    backend.normalizer = _normalizer()
    backend.pre_tokenizer = _pre_tokenizer()
    backend.decoder = decoders.Metaspace(replacement=_SPACE, prepend_scheme="never", split=True)
    backend.add_special_tokens(specials)  # matched before pre-tokenisation, never split
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        **SPECIAL_TOKENS,
        additional_special_tokens=list(ROLE_TOKENS),
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
        model_max_length=max_length,
    )


def _family_ids() -> dict[str, list[gymnasium.envs.registration.EnvSpec]]:
    families: dict[str, list[gymnasium.envs.registration.EnvSpec]] = {}
    for env_id in env_registry.names():
        spec = gymnasium.registry[env_id]
        entry = spec.entry_point
        try:
            cls = import_string(entry) if isinstance(entry, str) else entry
        except Exception:  # a broken plugin env must not hide the others
            continue
        family = getattr(cls, "family", None)
        if isinstance(family, str):
            families.setdefault(family, []).append(spec)
    return families


def resolve_env_id(source: str) -> str:
    """Map an env id or an env family name (``"frozenlake"``) to a registered env id.

    A family maps to the newest version of the registered env whose class declares that
    ``family`` (a tie between different envs picks the first id in sorted order).

    Raises:
        turngym.registry.UnknownNameError: Neither an env id nor a known family.
    """
    if source in env_registry or is_multiagent(source):
        return source
    families = _family_ids()
    specs = families.get(source) or families.get(source.lower())
    if not specs:
        close = difflib.get_close_matches(source, [*families, *env_registry.names()], n=3)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise UnknownNameError(
            f"{source!r} is neither an env id nor an env family.{hint} Families: "
            f"{', '.join(sorted(families))}; env ids: {', '.join(env_registry.names())}."
        )
    newest = max(spec.version or 0 for spec in specs)
    return sorted(spec.id for spec in specs if (spec.version or 0) == newest)[0]


def _init_weights(model: torch.nn.Module, seed: int) -> None:
    """Draw every matrix from ``N(0, 1 / fan_in)`` with a local generator; norms stay at one.

    Our own init (not the library's) keeps the weights identical across transformers versions
    for the same seed, as long as parameter names and shapes do not change. The LeCun scale
    (rather than Llama's 0.02) gives the untrained model next-token distributions far from
    uniform (logits of standard deviation about 1), so greedy and sampled outputs vary with
    the prompt, as tests and benchmarks want.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for _, param in sorted(model.named_parameters(), key=lambda item: item[0]):
            if param.ndim >= 2:
                values = torch.randn(param.shape, generator=generator, dtype=torch.float32)
                param.copy_(values * param.shape[-1] ** -0.5)


def build_tiny(
    source: str | Sequence[str],
    *,
    seed: int = 0,
    d_model: int = 64,
    n_layers: int = 2,
    n_heads: int = 4,
    max_positions: int = 2048,
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """Build a randomly initialised small Llama and its word-level tokenizer, offline.

    Args:
        source: An env id (``"turngym/FrozenLake-v0"``), an env family (``"sokoban"``), or
            an explicit list of vocabulary words.
        seed: Same seed, same weights and vocabulary; the global torch RNG is left untouched.
        d_model: Hidden size (the MLP is 4x wider).
        n_layers: Transformer blocks.
        n_heads: Attention heads (``d_model`` must be divisible by it).
        max_positions: Longest sequence (also the tokenizer's ``model_max_length``).

    Returns:
        ``(model, tokenizer)``; the model is in eval mode, embeddings tied.

    Raises:
        ValueError: ``d_model`` is not divisible by ``n_heads``.
    """
    if d_model % n_heads:
        raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
    if isinstance(source, str):
        words: Sequence[str] = env_vocabulary(resolve_env_id(source), seed=seed)
    else:
        words = list(source)
    tokenizer = build_tokenizer(words, max_length=max_positions)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=d_model,
        intermediate_size=4 * d_model,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_heads,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    # The constructor draws its own init from the global RNG; fork_rng restores that state
    # afterwards, and _init_weights then overwrites every matrix from a local generator.
    with torch.random.fork_rng(devices=[]):
        model = LlamaForCausalLM(config)
    _init_weights(model, seed)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.eval()
    return model, tokenizer
