"""Lockstep batched generation vs one episode at a time, with the tiny model on FrozenLake.

Both modes play the same episodes (``--tasks`` x ``--group-size``, 64 by default) through
``turngym.rollout.collect`` with the same agent (``make_agent("tiny:frozenlake")``: a random
2-layer Llama, ``<action>`` prefix, at most 8 new tokens, no history):

* lockstep: every live episode's conversation goes to ONE ``act_batch`` call per tick, so
  the model runs one left-padded prefill and one decode step per token for the whole batch.
  The tiny agent also encodes the prompt prefix the batch shares (the instructions, about
  150 of the 184 prompt tokens) once (``share_prefix=True``); a second row shows lockstep
  without it;
* sequential: ``collect(..., max_concurrent=1)``, so ``act_batch`` gets one conversation
  (prefix sharing has nothing to share there).

torch is pinned to 2 threads (``torch.set_num_threads(2)``). Target (issue): lockstep >= 5x
the turns/s of sequential. Prints a Markdown table of medians over ``--repeats`` runs.

A second table runs the same HF agent on a model of a realistic size, built offline: a
4-layer Llama with d = 512 (8 heads, MLP 1,536) over a 32,000-token byte-level BPE vocabulary
trained with ``tokenizers`` on text turngym generates (SearchQA passages, Shop products, word
lists), with a chat template. It plays Wordle in lockstep with the whole history in the prompt
and splits each tick's wall time into generation (prefill and decoding) and the per-tick
overhead around it: prompt building (messages and chat template), tokenisation, decoding the
completions, and the rollout engine with the env steps (parsing the actions included).
Target (issue 22): overhead <= 10% of a tick.

    python benchmarks/rollout_batching.py [--repeats 3] [--tasks 32] [--group-size 2]
                                          [--real-episodes 8] [--skip-tiny] [--skip-real]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Sequence

import torch

from turngym.agents import ActionResult, make_agent
from turngym.agents.hf import HFAgent
from turngym.rollout import collect
from turngym.types import Conversation

ENV_ID = "turngym/FrozenLake-v0"
REAL_ENV_ID = "turngym/Wordle-v0"
THREADS = 2


class CountingAgent:
    """Forwards to an agent and counts ``act_batch`` calls and conversations."""

    def __init__(self, agent) -> None:
        self.agent = agent
        self.calls = 0
        self.conversations = 0

    def act_batch(self, conversations: Sequence[Conversation]) -> list[ActionResult]:
        self.calls += 1
        self.conversations += len(conversations)
        return self.agent.act_batch(conversations)

    async def aact_batch(self, conversations: Sequence[Conversation]) -> list[ActionResult]:
        return self.act_batch(conversations)


def run(agent, tasks: int, group_size: int, max_concurrent: int | None, share: bool) -> dict:
    """One collection: turns/s plus the number of generation calls."""
    agent.share_prefix = share
    counting = CountingAgent(agent)
    start = time.perf_counter()
    groups = collect(
        ENV_ID, counting, tasks=tasks, group_size=group_size, max_concurrent=max_concurrent
    )
    elapsed = time.perf_counter() - start
    turns = sum(ep.num_turns for g in groups for ep in g.episodes)
    traced = sum(turn.trace is not None for g in groups for ep in g.episodes for turn in ep.turns)
    assert traced == turns, "every turn must carry a TokenTrace"
    return {"rate": turns / elapsed, "turns": turns, "calls": counting.calls, "s": elapsed}


def bpe_tokenizer(vocab_size: int = 32_000):
    """A byte-level BPE tokenizer trained offline on turngym's generated text, chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from turngym.agents.tiny import CHAT_TEMPLATE, ROLE_TOKENS, SPECIAL_TOKENS
    from turngym.envs.games.wordle_solver import load_word_lists
    from turngym.envs.search.world import get_world
    from turngym.envs.shop.catalog import get_catalog

    def texts():
        world = get_world(0, 5000)
        yield from world.titles
        yield from world.texts
        for product in get_catalog(1000).products:
            yield " ".join(str(v) for v in product.values())
        for words in load_word_lists()[1].values():
            yield " ".join(sorted(words))

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    extra = [*ROLE_TOKENS, "<action>", "</action>"]
    specials = [*SPECIAL_TOKENS.values(), *extra]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)  # fmt: skip
    backend.train_from_iterator(texts(), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, **SPECIAL_TOKENS,
                                   additional_special_tokens=extra,
                                   chat_template=CHAT_TEMPLATE, padding_side="left",
                                   model_max_length=4096)  # fmt: skip


class TimedHFAgent(HFAgent):
    """The HF agent with a stopwatch on each phase of ``act_batch``."""

    def reset_clock(self) -> None:
        self.clock = {"prompt": 0.0, "tokenise": 0.0, "generate": 0.0, "decode": 0.0, "act": 0.0}

    def _timed(self, phase: str, fn, *args):
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.clock[phase] += time.perf_counter() - start

    def act_batch(self, conversations):
        return self._timed("act", super().act_batch, conversations)

    def prompt_text(self, conversation):
        return self._timed("prompt", super().prompt_text, conversation)

    def _encode(self, texts):
        return self._timed("tokenise", super()._encode, texts)

    def _generate(self, prompts):
        return self._timed("generate", super()._generate, prompts)

    def _decode(self, ids):
        return self._timed("decode", super()._decode, ids)


def real_agent(seed: int = 0) -> TimedHFAgent:
    """A 4-layer, d = 512 Llama with a 32k BPE vocabulary, randomly initialised offline."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = bpe_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=512, intermediate_size=1536,
                         num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=8,
                         max_position_embeddings=4096, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=False)  # fmt: skip
    with torch.random.fork_rng(devices=[]):  # seeded weights; the global RNG is left as it was
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).eval()
    agent = TimedHFAgent(model, tokenizer, response_prefix="<action>", stop=("</action>",),
                         max_new_tokens=8, history=None, seed=seed, share_prefix=True)  # fmt: skip
    agent.reset_clock()
    return agent


def real_table(episodes: int, repeats: int) -> None:
    """Split the ticks of lockstep Wordle with the realistic model into generation and the rest."""
    start = time.perf_counter()
    agent = real_agent()
    built = time.perf_counter() - start
    n_params = sum(p.numel() for p in agent.model.parameters())
    collect(REAL_ENV_ID, agent, tasks=2, group_size=1)  # warm up
    rows = []
    for _ in range(repeats):
        agent.reset_clock()
        start = time.perf_counter()
        groups = collect(REAL_ENV_ID, agent, tasks=episodes, group_size=1)
        total = time.perf_counter() - start
        turns = sum(ep.num_turns for g in groups for ep in g.episodes)
        prompt_tokens = [len(t.trace.prompt_ids) for g in groups for ep in g.episodes
                         for t in ep.turns]  # fmt: skip
        c = agent.clock
        engine = total - c["act"]  # rollout engine + env steps (action parsing included)
        other = c["act"] - c["prompt"] - c["tokenise"] - c["generate"] - c["decode"]
        rows.append({"total": total, "turns": turns, "prompt": c["prompt"],
                     "tokenise": c["tokenise"], "generate": c["generate"],
                     "decode": c["decode"] + other, "engine": engine,
                     "mean_prompt": statistics.mean(prompt_tokens)})  # fmt: skip
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(f"\nRealistic model: Llama, 4 layers, d = 512, {n_params / 1e6:.1f} M parameters, "
          f"vocab {len(agent.tokenizer):,} (byte-level BPE trained offline; tokenizer + model "
          f"built in {built:.0f} s); {REAL_ENV_ID}, {episodes} episodes in lockstep, whole "
          f"history in the prompt (mean {med['mean_prompt']:.0f} prompt tokens), "
          f"max_new_tokens=8; median of {repeats} runs\n")  # fmt: skip
    print("| phase | seconds | share of the run |")
    print("|---|---:|---:|")
    for name, key in (("generation (prefill + decoding)", "generate"),
                      ("prompt building (messages + chat template)", "prompt"),
                      ("tokenisation", "tokenise"),
                      ("decoding completions, traces", "decode"),
                      ("rollout engine + env steps (action parsing)", "engine")):  # fmt: skip
        print(f"| {name} | {med[key]:.3f} | {med[key] / med['total']:.1%} |")
    overhead = med["total"] - med["generate"]
    print(f"| total ({med['turns']:.0f} turns) | {med['total']:.3f} | 100% |")
    print(f"\nper-tick overhead (everything but generation): {overhead / med['total']:.1%} of a "
          f"tick (target <= 10%)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--group-size", type=int, default=2)
    parser.add_argument("--real-episodes", type=int, default=8)
    parser.add_argument("--skip-tiny", action="store_true", help="skip the tiny-model table")
    parser.add_argument("--skip-real", action="store_true", help="skip the realistic model")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    if not args.skip_tiny:
        tiny_table(args)
    if not args.skip_real:
        real_table(args.real_episodes, args.repeats)


def tiny_table(args: argparse.Namespace) -> None:
    """Lockstep vs one at a time with the tiny model (the first table)."""
    agent = make_agent("tiny:frozenlake", seed=0)
    n_params = sum(p.numel() for p in agent.model.parameters())
    run(agent, 2, 2, None, True)  # warm up: first forward passes, env task cache
    modes = {  # name: (max_concurrent, share_prefix)
        "lockstep, shared prefix encoded once (tiny default)": (None, True),
        "lockstep, every prompt encoded whole": (None, False),
        "one episode at a time": (1, True),
    }
    results: dict[str, list[dict]] = {name: [] for name in modes}
    for _ in range(args.repeats):  # modes interleaved so that machine load hits all alike
        for name, (max_concurrent, share) in modes.items():
            results[name].append(run(agent, args.tasks, args.group_size, max_concurrent, share))
    episodes = args.tasks * args.group_size
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"torch {torch.__version__} pinned to torch.set_num_threads({THREADS}), "
        f"Python {platform.python_version()}"
    )
    print(
        f"workload: {ENV_ID}, {episodes} episodes ({args.tasks} tasks x {args.group_size}), "
        f"tiny:frozenlake ({n_params:,} parameters, vocab {len(agent.tokenizer)}, "
        f"max_new_tokens=8, history=0), median of {args.repeats} runs\n"
    )
    print("| Mode | act_batch calls | Turns | Median turns/s | Median wall s |")
    print("|---|---:|---:|---:|---:|")
    medians = {}
    for name, runs in results.items():
        medians[name] = statistics.median(r["rate"] for r in runs)
        wall = statistics.median(r["s"] for r in runs)
        print(
            f"| {name} | {runs[0]['calls']} | {runs[0]['turns']} | "
            f"{medians[name]:,.0f} | {wall:.2f} |"
        )
    shared, whole, sequential = medians.values()
    print(
        f"\nlockstep / one-at-a-time: {shared / sequential:.1f}x (target >= 5x); "
        f"without prefix sharing {whole / sequential:.1f}x"
    )


if __name__ == "__main__":
    main()
