from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tokenizers import Tokenizer, models  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402

from turngym.trainers.policy import (  # noqa: E402
    BeliefProbe,
    group_by_prefix,
    plain_render,
    sequence_token_logprobs,
    shared_prefix_token_logprobs,
    token_logprobs,
)
from turngym.trainers.tokens import TrainingSequence, collate  # noqa: E402
from turngym.types import Conversation  # noqa: E402

VOCAB = 64
CHARS = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ:.\n"
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant: {% endif %}"
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # The model is tiny: thread start-up costs more than it saves, and the CPU is shared.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=1024)  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = LlamaForCausalLM(config).float()
    return net.eval()


def char_tokenizer(padding_side: str = "right", chat: bool = False) -> PreTrainedTokenizerFast:
    """A character-level tokenizer (a BPE without merges) built offline; 59 ids < VOCAB."""
    vocab = {"<pad>": 0, "<unk>": 1, "<s>": 2}
    for ch in CHARS:
        vocab.setdefault(ch, len(vocab))
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>",
                                  bos_token="<s>", padding_side=padding_side)  # fmt: skip
    if chat:
        tok.chat_template = CHAT_TEMPLATE
    return tok


def ids_of(generator: torch.Generator, n: int) -> list[int]:
    return torch.randint(0, VOCAB, (n,), generator=generator).tolist()


def naive_logprobs(model, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Unpadded single-sequence reference: log p(ids[j] | ids[<j]) and entropies, j >= 1."""
    logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].double()
    logp = torch.log_softmax(logits, -1)
    picked = logp.gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return picked, entropy


# --- token_logprobs ----------------------------------------------------------------------


@pytest.mark.parametrize("side", ["right", "left"])
def test_token_logprobs_matches_per_sequence_loop(model, side):
    g = torch.Generator().manual_seed(1)
    rows = [ids_of(g, n) for n in (7, 3, 11)]
    width = max(map(len, rows))
    ids = torch.zeros((3, width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, row in enumerate(rows):
        span = slice(width - len(row), width) if side == "left" else slice(0, len(row))
        ids[r, span], mask[r, span] = torch.tensor(row), 1
    with torch.no_grad():
        logp, entropy = token_logprobs(model, ids, mask, with_entropy=True)
    assert logp.shape == ids.shape and logp.dtype == torch.float32
    for r, row in enumerate(rows):
        start = width - len(row) if side == "left" else 0
        want_lp, want_ent = naive_logprobs(model, row)
        got = logp[r, start : start + len(row)]
        assert got[0] == 0.0  # the first real token has no context
        torch.testing.assert_close(got[1:].double(), want_lp, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(entropy[r, start + 1 : start + len(row)].double(), want_ent,
                                   atol=1e-5, rtol=1e-5)  # fmt: skip
        pad = torch.ones(width, dtype=torch.bool)
        pad[start : start + len(row)] = False
        assert (logp[r][pad] == 0).all() and (entropy[r][pad] == 0).all()


def test_entropy_is_bounded_and_logprobs_negative(model):
    ids = torch.tensor([ids_of(torch.Generator().manual_seed(2), 9)])
    with torch.no_grad():
        logp, entropy = token_logprobs(model, ids, torch.ones_like(ids), with_entropy=True)
        _, none = token_logprobs(model, ids, torch.ones_like(ids))
    assert none is None
    assert (logp[0, 1:] < 0).all()
    assert ((entropy[0, 1:] > 0) & (entropy[0, 1:] <= np.log(VOCAB) + 1e-5)).all()


# --- shared prefix -----------------------------------------------------------------------


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def test_shared_prefix_loss_and_gradients_equal_naive(model):
    g = torch.Generator().manual_seed(3)
    prefix = ids_of(g, 24)
    conts = [ids_of(g, n) for n in (5, 1, 9, 3)]  # G = 4, ragged
    coef = [torch.randn(len(c), generator=g) for c in conts]

    model.zero_grad()
    naive_loss, naive_lp = torch.zeros(()), []
    for cont, w in zip(conts, coef, strict=True):
        ids = torch.tensor([prefix + cont])
        lp, ent = token_logprobs(model, ids, torch.ones_like(ids), with_entropy=True)
        lp, ent = lp[0, len(prefix) :], ent[0, len(prefix) :]
        naive_lp.append(lp.detach())
        naive_loss = naive_loss + (w * lp).sum() + 0.1 * ent.sum()
    naive_loss.backward()
    naive_grads = _grads(model)

    model.zero_grad()
    out = shared_prefix_token_logprobs(model, prefix, conts, with_entropy=True)
    shared_loss = sum(
        (w * lp).sum() + 0.1 * ent.sum() for (lp, ent), w in zip(out, coef, strict=True)
    )
    shared_loss.backward()
    shared_grads = _grads(model)
    model.zero_grad()

    assert [lp.shape[0] for lp, _ in out] == [5, 1, 9, 3]
    for (lp, _), want in zip(out, naive_lp, strict=True):
        torch.testing.assert_close(lp.detach(), want, atol=1e-5, rtol=1e-5)
    assert abs(shared_loss.item() - naive_loss.item()) <= 1e-5 * abs(naive_loss.item())
    for name, want in naive_grads.items():
        rel = (shared_grads[name] - want).norm() / want.norm().clamp_min(1e-30)
        assert rel <= 1e-5, f"{name}: relative gradient difference {rel:.2e}"


def test_shared_prefix_edge_cases(model):
    with torch.no_grad():
        assert shared_prefix_token_logprobs(model, [1, 2], []) == []
        out = shared_prefix_token_logprobs(model, [1, 2], [[], [5]])
        assert out[0][0].shape == (0,) and out[1][0].shape == (1,) and out[0][1] is None
        want, _ = naive_logprobs(model, [1, 2, 5])
        torch.testing.assert_close(out[1][0].double(), want[-1:], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="non-empty prefix"):
        shared_prefix_token_logprobs(model, [], [[1]])


def test_shared_prefix_refuses_gradient_checkpointing(model):
    model.activation_checkpointing_enable()
    model.train()
    try:
        with pytest.raises(RuntimeError, match="checkpointing"):
            shared_prefix_token_logprobs(model, [1, 2, 3], [[4, 5], [6]])
    finally:
        model.activation_checkpointing_disable()
        model.eval()


def _seq(ids: list[int], prompt_length: int) -> TrainingSequence:
    n = len(ids)
    mask = tuple([0] * prompt_length + [1] * (n - prompt_length))
    return TrainingSequence(input_ids=tuple(ids), loss_mask=mask, advantages=(0.0,) * n,
                            old_logprobs=(0.0,) * n, prompt_length=prompt_length,
                            episode_index=0, turn_indices=(0,))  # fmt: skip


def test_group_by_prefix_and_sequence_logprobs(model):
    g = torch.Generator().manual_seed(4)
    p, q = ids_of(g, 6), ids_of(g, 4)
    seqs = [_seq(p + ids_of(g, 3), 6), _seq(q + ids_of(g, 2), 4), _seq(p + ids_of(g, 5), 6),
            _seq(p[:5] + ids_of(g, 4), 5)]  # fmt: skip
    assert group_by_prefix(seqs) == [(6, [0, 2]), (4, [1]), (5, [3])]
    with torch.no_grad():
        shared, ent = sequence_token_logprobs(model, seqs, with_entropy=True)
        padded, _ = sequence_token_logprobs(model, seqs, share_prefix=False)
        batch = collate(seqs, pad_id=0)
        full, _ = token_logprobs(model, batch["input_ids"], batch["attention_mask"])
    assert shared.shape == batch["input_ids"].shape == ent.shape
    torch.testing.assert_close(shared, padded, atol=1e-5, rtol=1e-5)
    # Equal to the plain forward on trainable tokens, zero on prompts and padding.
    torch.testing.assert_close(shared, full * batch["loss_mask"], atol=1e-5, rtol=1e-5)


# --- BeliefProbe -------------------------------------------------------------------------


def _conversations() -> list[Conversation]:
    return [
        Conversation("Find the city.", (), "Where is the tower"),
        Conversation("Find the city.", (("Where is it", "search tower"),), "Result: Paris."),
        Conversation("Answer.", (("a", "b"), ("c", "d")), "e"),
    ]


def _one_by_one(model, tokenizer, render, conversations, texts, lead="") -> np.ndarray:
    out = []
    for conversation, text in zip(conversations, texts, strict=True):
        prompt = list(render(conversation)) + tokenizer.encode(lead, add_special_tokens=False)
        scored = tokenizer.encode(text, add_special_tokens=False)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt + scored])).logits[0].double()
        logp = torch.log_softmax(logits, -1)
        positions = range(len(prompt), len(prompt) + len(scored))
        out.append(sum(float(logp[j - 1, tok]) for j, tok in zip(positions, scored, strict=True)))
    return np.array(out)


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("chat", [False, True])
def test_belief_probe_matches_one_by_one(model, side, chat):
    tokenizer = char_tokenizer(side, chat=chat)
    probe = BeliefProbe(model, tokenizer, batch_size=2)  # 3 rows: two batches
    convs = _conversations()
    texts = ["Paris", "It is in Paris", "x"]
    want = _one_by_one(model, tokenizer, probe.render, convs, texts)
    np.testing.assert_allclose(probe.logprob(convs, texts), want, rtol=1e-5, atol=1e-5)
    lengths = np.array([len(tokenizer.encode(t, add_special_tokens=False)) for t in texts])
    np.testing.assert_allclose(probe.logprob(convs, texts, reduce="mean"), want / lengths,
                               rtol=1e-5, atol=1e-5)  # fmt: skip
    first = probe.render(convs[0])
    if chat:
        assert first[0] == tokenizer.convert_tokens_to_ids("<s>")
    else:
        assert "".join(tokenizer.convert_ids_to_tokens(first)).endswith("Assistant: ")


def test_belief_probe_answer_prefix_and_mode_restored(model):
    tokenizer = char_tokenizer()
    model.train()
    try:
        probe = BeliefProbe(model, tokenizer, answer_prefix="\nanswer: ")
        convs, texts = _conversations()[:2], ["Paris", "Lyon"]
        want = _one_by_one(model, tokenizer, probe.render, convs, texts, lead="\nanswer: ")
        np.testing.assert_allclose(probe.logprob(convs, texts), want, rtol=1e-5, atol=1e-5)
        assert model.training
    finally:
        model.eval()


def test_belief_probe_errors(model):
    tokenizer = char_tokenizer()
    probe = BeliefProbe(model, tokenizer)
    convs = _conversations()[:1]
    with pytest.raises(ValueError, match="prefixes"):
        probe.logprob(convs, ["a", "b"])
    with pytest.raises(ValueError, match="reduce"):
        probe.logprob(convs, ["a"], reduce="max")
    with pytest.raises(ValueError, match="no tokens"):
        probe.logprob(convs, [""])
    with pytest.raises(ValueError, match="batch_size"):
        BeliefProbe(model, tokenizer, batch_size=0)
    assert plain_render(tokenizer, convs[0]) == probe.render(convs[0])
