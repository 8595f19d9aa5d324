"""Each structured-reward estimator trains the tiny model for a few iterations on its env (CPU)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from turngym.trainers.config import TrainConfig  # noqa: E402
from turngym.trainers.trainer import Trainer  # noqa: E402

CASES = {
    "rank_grpo": ("turngym/SeqRec-v0", {}, {}),
    "f_grpo": ("turngym/SeqRec-v0", {}, {"difficulty": {"select": 12}}),
    "matchtir": ("turngym/ToolUse-v0", {}, {}),
    "mapo": ("turngym/EmotionalSupport-v0", {"source": "judge"}, {}),
    "scrl": ("turngym/TryAgain-v0", {}, {"difficulty": {"subproblems": True,
                                                        "puzzle_types": ["arithmetic"]}}),
    # PRE-GRPO's other quality source, KernelGen's per-turn scores, runs a sandboxed process
    # per candidate: the judge source keeps this test light (the estimator code is the same).
    "pre_grpo": ("turngym/EmotionalSupport-v0", {"source": "judge"}, {}),
    "slea_rl": ("turngym/FrozenLake-v0", {}, {}),
    "pipo": ("turngym/FrozenLake-v0", {}, {}),
    "r3": ("turngym/TryAgain-v0", {}, {}),
    "skill_r1": ("turngym/TryAgain-v0", {}, {}),
    "ufo": ("turngym/TryAgain-v0", {}, {}),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_estimator_trains_the_tiny_model(name, tmp_path):
    env, params, options = CASES[name]
    config = TrainConfig(
        env=env, env_options=options, estimator=name, estimator_params=params, iterations=3,
        tasks_per_iteration=2, group_size=3, task_pool=2, max_turns=3, max_new_tokens=6,
        response_suffix="</action>", stop=(), tiny_d_model=16, tiny_layers=1, eval_every=0,
        eval_tasks=1, checkpoint_every=0, temperature=2.0, out_dir=str(tmp_path / name),
    )  # fmt: skip
    trainer = Trainer(config)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    rows = trainer.train()
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    for row in rows:
        assert all(math.isfinite(v) for v in row.values() if isinstance(v, float)), row
    changed = any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(),
                                                         strict=True))  # fmt: skip
    stepped = sum(r.get("optimizer_steps", 0.0) for r in rows)
    assert changed == (stepped > 0), rows  # an update happened whenever there was signal
    assert (tmp_path / name / "checkpoint" / "trainer_state.pt").exists()
