from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from turngym.agents import make_agent  # noqa: E402
from turngym.agents.hf import HFAgent  # noqa: E402
from turngym.agents.tiny import build_tiny  # noqa: E402
from turngym.rollout import collect  # noqa: E402
from turngym.types import Conversation  # noqa: E402

LAKE = "You are on a frozen lake. Walk to the goal G without falling into a hole O."
GRIDS = ("P___\n_O__\n__O_\n___G", "____\nPO__\n__O_\n___G", "____\n_O__\nP_O_\n___G")


@pytest.fixture(scope="module")
def lake():
    return build_tiny("frozenlake", seed=0)


def _conversations() -> list[Conversation]:
    """Conversations of different lengths (so the batch is left-padded)."""
    moves = ("<action>down</action>", "<action>left</action>")
    out = []
    for k in range(4):
        turns = tuple((GRIDS[i % 3], moves[i % 2]) for i in range(k))
        out.append(Conversation(LAKE, turns, GRIDS[k % 3], episode_id=f"e{k}"))
    return out


def _recompute(model, prompt, completion) -> list[float]:
    ids = torch.tensor([list(prompt) + list(completion)])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
    start = len(prompt) - 1
    return [logprobs[start + i, tok].item() for i, tok in enumerate(completion)]


def test_batch_gives_one_action_each_with_consistent_traces(lake):
    model, tokenizer = lake
    agent = HFAgent(model, tokenizer, response_prefix="<action>", max_new_tokens=6, seed=1)
    convs = _conversations()
    results = agent.act_batch(convs)
    assert len(results) == len(convs)
    for conv, result in zip(convs, results, strict=True):
        trace = result.trace
        assert result.text.startswith("<action>")
        assert 1 <= len(trace.completion_ids) <= 6
        assert len(trace.logprobs) == len(trace.completion_ids)
        assert list(trace.prompt_ids) == agent.prompt_ids(conv)
        assert all(type(i) is int for i in trace.prompt_ids + trace.completion_ids)
        assert all(type(x) is float and x <= 0 for x in trace.logprobs)
    assert len({len(r.trace.prompt_ids) for r in results}) == len(convs)
    assert agent.act_batch([]) == []
    model.train()  # a trainer's mode survives generation (which runs in eval mode)
    try:
        agent.act_batch(convs[:1])
        assert model.training
    finally:
        model.eval()


@pytest.mark.parametrize("share_prefix", [False, True])
def test_logprobs_match_a_full_forward_pass(lake, share_prefix):
    model, tokenizer = lake
    agent = HFAgent(model, tokenizer, max_new_tokens=8, stop=(), seed=2, share_prefix=share_prefix)
    convs = _conversations()
    assert bool(agent._shared_length([agent.prompt_ids(c) for c in convs])) == share_prefix
    for result in agent.act_batch(convs):
        trace = result.trace
        expected = _recompute(model, trace.prompt_ids, trace.completion_ids)
        assert trace.logprobs == pytest.approx(expected, abs=1e-4)


def test_tempered_logprobs_are_of_the_tempered_distribution(lake):
    model, tokenizer = lake
    agent = HFAgent(model, tokenizer, temperature=0.5, max_new_tokens=4, stop=(), seed=2)
    trace = agent.act_batch(_conversations()[:1])[0].trace
    ids = torch.tensor([list(trace.prompt_ids) + list(trace.completion_ids)])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0] / 0.5, dim=-1)
    start = len(trace.prompt_ids) - 1
    expected = [logprobs[start + i, t].item() for i, t in enumerate(trace.completion_ids)]
    assert trace.logprobs == pytest.approx(expected, abs=1e-4)


def test_greedy_is_deterministic_and_matches_generate(lake):
    model, tokenizer = lake
    agent = HFAgent(model, tokenizer, temperature=0, max_new_tokens=10, stop=())
    conv = _conversations()[2]
    first = agent.act_batch([conv])[0]
    assert agent.act_batch([conv])[0] == first
    prompt = torch.tensor([agent.prompt_ids(conv)])
    with torch.no_grad():
        reference = model.generate(
            prompt, attention_mask=torch.ones_like(prompt), do_sample=False, max_new_tokens=10
        )
    assert list(first.trace.completion_ids) == reference[0, prompt.shape[1] :].tolist()


@pytest.mark.parametrize("share_prefix", [False, True])
def test_left_padded_batch_equals_one_at_a_time(lake, share_prefix):
    model, tokenizer = lake
    agent = HFAgent(
        model, tokenizer, temperature=0, max_new_tokens=8, stop=(), share_prefix=share_prefix
    )
    convs = _conversations()
    batched = agent.act_batch(convs)
    for conv, result in zip(convs, batched, strict=True):
        alone = agent.act_batch([conv])[0]
        assert alone.trace.completion_ids == result.trace.completion_ids
        assert alone.text == result.text
        assert alone.trace.logprobs == pytest.approx(result.trace.logprobs, abs=1e-4)


def test_sampling_is_seeded_and_tiny_top_p_is_greedy(lake):
    model, tokenizer = lake
    convs = _conversations()
    runs = [HFAgent(model, tokenizer, seed=s, stop=(), max_new_tokens=6) for s in (7, 7, 8)]
    a, b, c = (agent.act_batch(convs) for agent in runs)
    assert a == b
    assert a != c
    greedy = HFAgent(model, tokenizer, temperature=0, stop=(), max_new_tokens=6).act_batch(convs)
    nucleus = HFAgent(model, tokenizer, top_p=1e-6, stop=(), max_new_tokens=6).act_batch(convs)
    assert [r.trace.completion_ids for r in nucleus] == [r.trace.completion_ids for r in greedy]


def test_stop_strings_and_eos_cut_generation(lake):
    model, tokenizer = lake
    conv = _conversations()[1]
    free = HFAgent(
        model, tokenizer, temperature=0, stop=(), max_new_tokens=8, response_prefix="<action>"
    )
    ids = free.act_batch([conv])[0].trace.completion_ids
    stop = tokenizer.decode(ids[:3])
    assert stop and stop not in tokenizer.decode(ids[:2])  # a stop string the 3rd token ends
    cut = HFAgent(
        model, tokenizer, temperature=0, stop=("never", stop), max_new_tokens=8,
        response_prefix="<action>", response_suffix="!",
    ).act_batch([conv])[0]  # fmt: skip
    assert cut.trace.completion_ids == ids[:3]
    assert cut.text == "<action>" + stop + "!"
    assert len(cut.trace.logprobs) == 3
    free.eos_ids = frozenset({ids[1]})  # the second token now ends the completion
    ended = free.act_batch([conv])[0]
    assert ended.trace.completion_ids == ids[:2]


def test_history_window_truncates_the_prompt(lake):
    model, tokenizer = lake
    conv = _conversations()[3]
    full = HFAgent(model, tokenizer)
    windowed = HFAgent(model, tokenizer, history=1)
    assert windowed.prompt_ids(conv) == full.prompt_ids(conv.last(1))
    assert len(windowed.prompt_ids(conv)) < len(full.prompt_ids(conv))
    none = HFAgent(model, tokenizer, history=0, response_prefix="<action>")
    text = none.prompt_text(conv)
    assert text.count("<|user|>") == 1 and "<|assistant|>\n<action>" in text
    assert text.endswith("<|assistant|>\n<action>")
    bare = HFAgent(model, tokenizer, history=0, include_instructions=False)
    assert "<|system|>" not in bare.prompt_text(conv)


def test_plain_template_without_chat_template(lake):
    model, tokenizer = lake
    plain_tokenizer = build_tiny("frozenlake", d_model=16, n_heads=2)[1]
    plain_tokenizer.chat_template = None
    agent = HFAgent(model, plain_tokenizer, response_prefix="<action>", history=1)
    text = agent.prompt_text(_conversations()[2])
    assert text.startswith(f"System: {LAKE}\nUser: ")
    assert "\nAssistant: <action>left</action>\nUser: " in text
    assert text.endswith("\nAssistant: <action>")
    assert agent.act_batch(_conversations()[:2])[0].text.startswith("<action>")


def test_arguments_are_validated(lake):
    model, tokenizer = lake
    for kwargs in ({"temperature": -1}, {"top_p": 0}, {"max_new_tokens": 0}, {"history": -1}):
        with pytest.raises(ValueError):
            HFAgent(model, tokenizer, **kwargs)
    with pytest.raises(ValueError, match="sequence of strings"):
        HFAgent(model, tokenizer, stop="</action>")


def test_from_pretrained_and_registry(tmp_path, lake):
    model, tokenizer = lake
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = HFAgent.from_pretrained(str(tmp_path), temperature=0, stop=(), max_new_tokens=5)
    by_name = make_agent(f"hf:{tmp_path}")
    assert isinstance(by_name, HFAgent)
    conv = _conversations()[0]
    original = HFAgent(model, tokenizer, temperature=0, stop=(), max_new_tokens=5)
    assert loaded.act_batch([conv]) == original.act_batch([conv])
    for spec in ("hf", "tiny"):
        with pytest.raises(ValueError, match="needs"):
            make_agent(spec)


def test_tiny_agent_end_to_end_on_frozen_lake():
    agent = make_agent("tiny:frozenlake", seed=0)
    assert isinstance(agent, HFAgent)
    groups = collect("turngym/FrozenLake-v0", agent, tasks=4, group_size=2)
    assert [len(g) for g in groups] == [2, 2, 2, 2]
    turns = [turn for g in groups for ep in g.episodes for turn in ep.turns]
    assert turns
    for turn in turns:
        assert turn.trace is not None
        assert 1 <= len(turn.trace.completion_ids) <= 8
        assert len(turn.trace.logprobs) == len(turn.trace.completion_ids)
        assert turn.action.startswith("<action>")
    for turn in turns[:3]:  # the shared-prefix path computes the same logprobs
        expected = _recompute(agent.model, turn.trace.prompt_ids, turn.trace.completion_ids)
        assert turn.trace.logprobs == pytest.approx(expected, abs=1e-4)
    # history=0: the prompt holds the instructions and the current observation only.
    assert all(turn.trace.prompt_ids[-1] == agent.tokenizer.convert_tokens_to_ids("<action>")
               for turn in turns)  # fmt: skip
