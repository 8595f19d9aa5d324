"""A verl multi-turn rollout step against a turngym env, with the tiny model (verl installed).

verl's own ``AgentLoopWorker`` (built from verl's generated PPO config) runs
``generate_sequences`` on a batch of ``agent_name="turngym"`` rows: it instantiates
:class:`~turngym.adapters.verl.TurngymAgentLoop` through its agent-loop registry, the loop
plays FrozenLake through verl's Continuous Token builder, and verl pads and stacks the rows
into a ``DataProto``. The generation server is the CPU stand-in
(:class:`~turngym.adapters.verl.llm_client.TransformersLLMClient`); on a cluster it is vLLM or
SGLang (GPU only), which is the one part this file cannot run here. The GPU-marked test runs
the same rollout with the model on a CUDA device.

Checked: each row's model-token runs are its turns; replaying the decoded actions in a fresh
env with the row's seed gives the recorded per-turn rewards, anchors and outcome; the batch
goes through the adapter's ``compute_advantage`` with ``turngym_gigpo``.
"""

import asyncio
import os
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
verl = pytest.importorskip("verl")
warnings.filterwarnings("ignore", module="verl")

from omegaconf import OmegaConf  # noqa: E402
from verl.experimental.agent_loop.agent_loop import AgentLoopWorker  # noqa: E402
from verl.protocol import DataProto  # noqa: E402

import turngym.adapters.verl as tv  # noqa: E402
from turngym.adapters.verl.advantage import _mask_runs  # noqa: E402
from turngym.adapters.verl.llm_client import TransformersLLMClient  # noqa: E402
from turngym.agents.tiny import build_tiny  # noqa: E402
from turngym.core import STATE_KEY  # noqa: E402
from turngym.registry import make  # noqa: E402

pytestmark = pytest.mark.slow

ENV = "turngym/FrozenLake-v0"
OPTIONS = {"difficulty": {"size": 3}}


def _worker(tmp_path, device):
    model, tokenizer = build_tiny(ENV, seed=0)
    path = str(tmp_path / "tiny")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    config = OmegaConf.load(
        os.path.join(os.path.dirname(verl.__file__), "trainer/config/_generated_ppo_trainer.yaml")
    )
    rollout = config.actor_rollout_ref.rollout
    config.actor_rollout_ref.model.path = path
    rollout.name = "vllm"  # only names the server kind; the client below answers instead
    rollout.prompt_length, rollout.response_length = 512, 192
    rollout.calculate_log_probs = True
    client = TransformersLLMClient(model.to(device), tokenizer.eos_token_id, max_new_tokens=6)
    return AgentLoopWorker(config, client), tokenizer


def _rollout(worker, seeds, group_size):
    rows = tv.dataset_rows(ENV, seeds, options=OPTIONS, max_turns=4)
    rows = [row for row in rows for _ in range(group_size)]
    batch = DataProto.from_dict(
        non_tensors={
            "agent_name": np.array([r["agent_name"] for r in rows], dtype=object),
            "extra_info": np.array([r["extra_info"] for r in rows], dtype=object),
            "raw_prompt": np.array([r["prompt"] for r in rows], dtype=object),
            "uid": np.array([str(r["extra_info"]["turngym"]["seed"]) for r in rows], dtype=object),
        }
    )
    return rows, asyncio.run(worker.generate_sequences(batch))


def _check(rows, out, tokenizer):
    mask = out.batch["response_mask"].numpy()
    responses = out.batch["responses"].numpy()
    for i, row in enumerate(rows):
        starts, ends = _mask_runs(mask[i])
        scores = list(out.non_tensor_batch["turn_scores"][i])
        assert len(starts) == len(scores) >= 1
        env = make(ENV)
        seed = row["extra_info"]["turngym"]["seed"]
        _, info = env.reset(seed=seed, options={"split": "train", **OPTIONS})
        anchors, rewards = [], []
        for s, e in zip(starts, ends, strict=True):
            anchors.append(info.get(STATE_KEY))
            action = tokenizer.decode(responses[i, s:e].tolist(), skip_special_tokens=True)
            _, reward, terminated, truncated, info = env.step(action)
            rewards.append(float(reward))
        assert rewards == scores
        assert list(out.non_tensor_batch["anchor_obs"][i]) == anchors
        assert out.batch["rm_scores"][i].sum().item() == pytest.approx(sum(scores))
    out.batch["token_level_rewards"] = out.batch["rm_scores"]
    advantages = tv.compute_advantage(out, "turngym_gigpo").batch["advantages"]
    assert advantages.shape == out.batch["response_mask"].shape
    assert (advantages[out.batch["response_mask"] == 0] == 0).all()


def test_verls_agent_loop_worker_plays_turngym_rows_on_cpu(tmp_path):
    worker, tokenizer = _worker(tmp_path, "cpu")
    rows, out = _rollout(worker, [0, 1], group_size=2)
    _check(rows, out, tokenizer)
    assert "rollout_log_probs" in out.batch.keys()  # the client returned log-probabilities


@pytest.mark.gpu
def test_the_same_rollout_with_the_model_on_a_gpu(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    worker, tokenizer = _worker(tmp_path, "cuda")
    rows, out = _rollout(worker, [0, 1], group_size=2)
    _check(rows, out, tokenizer)
