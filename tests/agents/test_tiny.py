from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from turngym.agents import RandomAgent, tiny  # noqa: E402
from turngym.agents.tiny import (  # noqa: E402
    build_tiny,
    build_tokenizer,
    env_vocabulary,
    resolve_env_id,
    split_words,
)
from turngym.registry import UnknownNameError  # noqa: E402
from turngym.rollout import collect  # noqa: E402

FROZEN_LAKE = "turngym/FrozenLake-v0"
SOKOBAN = "turngym/Sokoban-v0"


@pytest.fixture(scope="module")
def lake():
    return build_tiny("frozenlake", seed=0)


def _texts(env_id: str) -> list[str]:
    groups = collect(env_id, RandomAgent(seed=5), tasks=[7, 8], group_size=1)
    turns = [turn for g in groups for ep in g.episodes for turn in ep.turns]
    return [text for turn in turns for text in (turn.observation, turn.action)]


def _round_trip(tokenizer, text: str) -> str:
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.unk_token_id not in ids, tokenizer.convert_ids_to_tokens(ids)
    return tokenizer.decode(ids)


def test_split_words_keeps_tags_cells_and_newlines():
    assert split_words("<action>down</action>") == ["<action>", "down", "</action>"]
    assert split_words("PO_√\n#?") == ["P", "O", "_", "√", "\n", "#", "?"]
    assert split_words("Walk to <think>G.</think>") == [
        "Walk", "▁to", "▁<think>", "G", ".", "</think>",
    ]  # fmt: skip
    assert split_words("up || left") == ["up", "▁|", "|", "▁left"]


@pytest.mark.parametrize("env_id", [FROZEN_LAKE, SOKOBAN])
def test_tokenizer_round_trips_actions_and_observations(env_id):
    _, tokenizer = build_tiny(env_id, seed=0, d_model=16, n_heads=2, n_layers=1)
    for action in ("<action>down</action>", "<action>left</action>", "<action>up</action>"):
        ids = tokenizer.encode(action, add_special_tokens=False)
        assert len(ids) == 3
        assert tokenizer.decode(ids) == action
    for text in _texts(env_id):  # grids, feedback messages and actions
        assert _round_trip(tokenizer, text) == text


def test_tokenizer_specials_chat_template_and_unknown_words(lake):
    _, tokenizer = lake
    assert tokenizer.convert_ids_to_tokens(list(range(7))) == [
        "<pad>", "<unk>", "<bos>", "<eos>", "<|system|>", "<|user|>", "<|assistant|>",
    ]  # fmt: skip
    assert tokenizer.padding_side == "left"
    messages = [{"role": "system", "content": "Walk"}, {"role": "user", "content": "P_\nOG"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == "<bos><|system|>\nWalk\n<|user|>\nP_\nOG\n<|assistant|>\n"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text
    assert tokenizer.encode("zebra", add_special_tokens=False) == [tokenizer.unk_token_id]
    # Tabs are blanks like spaces; newlines stay tokens of their own.
    assert tokenizer.decode(tokenizer.encode("up\tdown\n", add_special_tokens=False)) == (
        "up down\n"
    )


def test_vocabulary_is_deterministic_and_covers_the_env():
    words = env_vocabulary(FROZEN_LAKE)
    tiny._vocabulary.cache_clear()  # recompute from scratch, not from the cache
    assert env_vocabulary(FROZEN_LAKE) == words
    assert words == sorted(set(words))
    for token in ("<action>", "</action>", "<think>", "down", "\n", "P", "G", "_", "√", "Invalid"):
        assert token in words
    assert env_vocabulary(FROZEN_LAKE, seed=1) != words or len(words) > 0
    with pytest.raises(ValueError, match="episodes"):
        env_vocabulary(FROZEN_LAKE, episodes=0)


def test_family_names_resolve_to_env_ids():
    assert resolve_env_id("frozenlake") == FROZEN_LAKE
    assert resolve_env_id("sokoban") == SOKOBAN
    assert resolve_env_id(SOKOBAN) == SOKOBAN
    with pytest.raises(UnknownNameError):
        resolve_env_id("no-such-family")


def test_same_seed_same_weights_and_global_rng_untouched():
    state = torch.get_rng_state()
    a, tok_a = build_tiny(["up", "down"], seed=3, d_model=16, n_heads=2)
    b, tok_b = build_tiny(["up", "down"], seed=3, d_model=16, n_heads=2)
    c, _ = build_tiny(["up", "down"], seed=4, d_model=16, n_heads=2)
    assert torch.equal(torch.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["model.embed_tokens.weight"], sc["model.embed_tokens.weight"])
    assert tok_a.get_vocab() == tok_b.get_vocab()
    assert not a.training


def test_model_shape_follows_arguments(lake):
    model, tokenizer = lake
    assert model.config.vocab_size == len(tokenizer)
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (64, 2)
    assert model.config.num_attention_heads == 4
    with pytest.raises(ValueError, match="divisible"):
        build_tiny(["up"], d_model=10, n_heads=4)


def test_save_and_load_round_trip(tmp_path, lake):
    model, tokenizer = lake
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, local_files_only=True)
    loaded_tok = transformers.AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    text = "<bos><|user|>\nP_\nOG\n<|assistant|>\n<action>down</action>"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert loaded_tok.encode(text, add_special_tokens=False) == ids
    assert loaded_tok.decode(ids) == text
    assert loaded_tok.chat_template == tokenizer.chat_template
    assert loaded_tok.padding_side == "left"
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits
        got = loaded.eval()(torch.tensor([ids])).logits
    assert torch.equal(expected, got)


def test_build_tokenizer_drops_duplicates_and_specials():
    tokenizer = build_tokenizer(["up", "up", "<pad>", "down"])
    assert len(tokenizer) == 7 + 2
