"""Forged or broken submissions are refused, naming the row and why (issue 18, defect 6).

Each case starts from a genuine run directory and edits its ``results.json`` (or episodes) the
way a forger would; the board must refuse it, say which row, and write nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sqlalchemy")

from turngym.leaderboard.store import SubmissionError  # noqa: E402

from ._runs import Spec, rate, write_run  # noqa: E402

ROW = "row turngym/Toy-v0 / random"


def forge(run: Path, edit: Any) -> Path:
    """Apply ``edit(results_dict)`` to the run's results.json."""
    path = run / "results.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))  # json writes NaN and Infinity as JS literals
    return run


def metric(data: dict, name: str = "success") -> dict:
    return data["entries"][0]["metrics"][name]


def set_mean(value: float, name: str = "success") -> Any:
    def edit(data: dict) -> None:
        metric(data, name)["mean"] = value

    return edit


def set_metric(**fields: Any) -> Any:
    def edit(data: dict) -> None:
        metric(data).update(fields)

    return edit


def set_provenance(**fields: Any) -> Any:
    def edit(data: dict) -> None:
        data["provenance"].update(fields)

    return edit


FORGERIES = {
    "huge success": (set_mean(1e308), f"{ROW}: success: mean 1e+308 is outside its range"),
    "mean outside its interval": (set_metric(mean=0.9, ci95=[0.1, 0.3]),
                                  "does not contain its mean"),
    "NaN interval": (set_metric(ci95=[math.nan, 0.9]), "must be finite numbers"),
    "infinite interval": (set_metric(ci95=[0.0, math.inf]), "must be finite numbers"),
    "infinite return": (set_mean(math.inf, "return"), "return: mean, std and interval must"),
    "negative turns": (set_mean(-1.0, "turns"), "turns: mean -1.0 is outside its range"),
    "unknown method": (set_metric(method="trust-me"), "interval method 'trust-me'"),
    "inflated n": (set_metric(n=10**6), "results.json summarises 1000000"),
    "inflated seeds": (lambda d: d["entries"][0].update(seeds=[0, 1, 2]),
                       "n must be seeds x episodes_per_seed = 60"),
    "unknown kind": (lambda d: d.update(kind="hacked"), "kind 'hacked' is not one of"),
    "unknown metric": (lambda d: d["entries"][0]["metrics"].update(elo=metric(d)),
                       "unknown metrics ['elo']"),
    "git sha not a sha": (set_provenance(git_sha=12345), "provenance 'git_sha' must be"),
    "command not a list": (set_provenance(command="rm -rf /"), "provenance 'command' must be"),
    "date not a date": (set_provenance(date="yesterday"), "provenance 'date' must be"),
    "version not a string": (set_provenance(turngym_version=["9.9"]), "'turngym_version'"),
    "unknown split": (lambda d: d["entries"][0].update(split="secret"), "split must be one of"),
    "NaN curve point": (lambda d: d["entries"][0].update(curve=[{"env_steps": 1,
                                                                 "success": math.nan}]),
                        "curve point"),
    # In range, a valid interval, but not what its 20 episodes give (10 successes).
    "rows not from the episodes": (set_metric(mean=0.95, ci95=[0.76, 0.99]),
                                   "success does not match its 20 episodes"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(FORGERIES))
def test_forged_results_are_refused_naming_the_row(store, tmp_path, case):
    edit, message = FORGERIES[case]
    run = forge(write_run(tmp_path / "run", [Spec(rate(20, 10))]), edit)
    with pytest.raises(SubmissionError) as caught:
        store.submit(run)
    assert message in str(caught.value), str(caught.value)
    assert store.submissions() == []  # nothing was written


def test_row_named_among_several(store, tmp_path):
    run = write_run(tmp_path / "run", [Spec(rate(20, 10)),
                                       Spec(rate(20, 5), agent="oracle")])  # fmt: skip

    def edit(data: dict) -> None:
        data["entries"][1]["metrics"]["success"]["mean"] = 2.0

    with pytest.raises(SubmissionError, match="row turngym/Toy-v0 / oracle: success: mean 2.0"):
        store.submit(forge(run, edit))


def test_out_of_range_episode_is_refused(store, tmp_path):
    run = write_run(tmp_path / "run", [Spec(rate(20, 10))])
    lines = (run / "episodes.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["outcome"] = 7.0
    (run / "episodes.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    with pytest.raises(SubmissionError, match=r"episode '.*': outcome = 7.0 is outside"):
        store.submit(run)


def test_a_run_without_episodes_cannot_be_checked(store, tmp_path):
    run = write_run(tmp_path / "run", [Spec(rate(20, 10))], episodes=False)
    with pytest.raises(SubmissionError, match="no episodes.jsonl"):
        store.submit(run)


def test_genuine_runs_land_with_the_recomputed_rows(store, tmp_path):
    run = write_run(tmp_path / "run", [Spec(rate(40, 30)), Spec(rate(40, 12), agent="b")])
    submission = store.submit(run)
    assert submission.entries == 2 and submission.episodes == 80
    rows = {r["agent"]: r for r in store.rows()}
    assert rows["random"]["mean"] == 0.75 and rows["b"]["mean"] == 0.3
