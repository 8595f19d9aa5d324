"""Shared-prefix forward+backward vs. G full sequences (Prefix Grouper, arXiv 2506.05433).

A GRPO-style group: G responses to one prompt. The naive update runs the G full sequences
(prompt + response) as one batch through ``token_logprobs``; the shared one encodes the prompt
once and runs the G responses on its key/value cache (``shared_prefix_token_logprobs``). Both
back-propagate the same loss (advantage-weighted response log-probabilities); the script also
reports the largest relative difference between the two gradients, per parameter tensor.

Model: a randomly initialised ``LlamaForCausalLM`` (d_model 128, 4 layers, 4 heads, MLP 512,
vocabulary 2048; about 1.6M parameters), float32 on CPU, pinned to --threads threads.

Target (issue 3): shared >= 2x faster than naive at G = 8, 512-token prompt, 32-token responses.

    python benchmarks/prefix_sharing.py [--group 8] [--prompt 512] [--response 32] [--repeats 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from turngym.trainers.policy import shared_prefix_token_logprobs, token_logprobs

VOCAB = 2048


def build_model(seed: int) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=128, intermediate_size=512, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
    )  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return LlamaForCausalLM(config).float().train()


def naive_loss(model, prompt, responses, advantages) -> torch.Tensor:
    ids = torch.tensor([prompt + r for r in responses])
    logprobs, _ = token_logprobs(model, ids, torch.ones_like(ids))
    return -(logprobs[:, len(prompt) :] * advantages).sum()


def shared_loss(model, prompt, responses, advantages) -> torch.Tensor:
    out = shared_prefix_token_logprobs(model, prompt, responses)
    return -sum((lp * adv).sum() for (lp, _), adv in zip(out, advantages, strict=True))


def timed(model, loss_fn: Callable[..., torch.Tensor], args: tuple, repeats: int) -> float:
    """Median seconds of zero_grad + forward + backward over ``repeats`` runs (1 warm-up)."""
    times = []
    for run in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        loss_fn(model, *args).backward()
        if run:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def max_relative_grad_diff(model, args: tuple) -> float:
    grads = []
    for loss_fn in (naive_loss, shared_loss):
        model.zero_grad(set_to_none=True)
        loss_fn(model, *args).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    return max(
        float((grads[1][n] - g).norm() / g.norm().clamp_min(1e-30)) for n, g in grads[0].items()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--prompt", type=int, default=512)
    parser.add_argument("--response", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build_model(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    prompt = torch.randint(0, VOCAB, (args.prompt,), generator=gen).tolist()
    responses = torch.randint(0, VOCAB, (args.group, args.response), generator=gen).tolist()
    advantages = torch.randn(args.group, args.response, generator=gen)
    inputs = (prompt, responses, advantages)

    naive = timed(model, naive_loss, inputs, args.repeats)
    shared = timed(model, shared_loss, inputs, args.repeats)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"Model: LlamaForCausalLM d_model=128, 4 layers, vocab {VOCAB}, {n_params / 1e6:.2f}M "
          f"params, float32; torch {torch.__version__}, {args.threads} threads, "
          f"{platform.processor() or platform.machine()}")  # fmt: skip
    print(
        f"G={args.group}, prompt {args.prompt} tokens, responses {args.response} tokens; "
        f"median of {args.repeats} runs (forward + backward)\n"
    )
    print("| method | tokens through the model | median s | speedup |")
    print("|---|---:|---:|---:|")
    full = args.group * (args.prompt + args.response)
    part = args.prompt + args.group * (args.response - 1)
    print(f"| naive ({args.group} full sequences) | {full} | {naive:.3f} | 1.00x |")
    print(f"| shared prefix | {part} | {shared:.3f} | {naive / shared:.2f}x |")
    print(f"\nmax relative gradient difference (per parameter, L2): "
          f"{max_relative_grad_diff(model, inputs):.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
