"""The light install: the `bench` extra holds exactly what `turngym bench` imports."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Every module the main job runs: the CLI, the bench and its report, the trainer with the tiny
# model, the eval runner for the baselines, the plots (pyplot) and the SQLite leaderboard.
BENCH_MODULES = ("turngym.cli", "turngym.evals.bench", "turngym.evals.report",
                 "turngym.evals.plots", "turngym.evals.runner", "turngym.evals.tables",
                 "turngym.trainers.trainer", "turngym.agents.tiny", "turngym.agents.hf",
                 "turngym.leaderboard.store", "matplotlib.pyplot")  # fmt: skip


def _extras() -> dict[str, list[str]]:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _requirements(extra: str, extras: dict[str, list[str]]) -> set[str]:
    """Distribution names an extra asks for, self-references (turngym[train]) expanded."""
    out: set[str] = set()
    for requirement in extras[extra]:
        if _name(requirement) == "turngym":
            for inner in re.findall(r"\[(.*)\]", requirement)[0].split(","):
                out |= _requirements(inner.strip(), extras)
        else:
            out.add(_name(requirement))
    return out


def _closure(names: set[str]) -> set[str]:
    """The installed distributions ``names`` pull in (unconditional requirements, recursive)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in importlib.metadata.requires(name) or ():
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name.lower().replace("_", "-"))
    return seen


def _site_with_only(dists: set[str], target: Path) -> None:
    """Link into ``target`` every file tree of the installed distributions named ``dists``."""
    for dist in importlib.metadata.distributions():
        if _normal(dist.metadata["Name"]) not in dists:
            continue
        for path in dist.files or ():
            top = path.parts[0]
            source, link = Path(str(dist.locate_file(top))), target / top
            if source.exists() and not link.exists() and top != "..":
                link.symlink_to(source)


def _normal(name: str) -> str:
    return name.lower().replace("_", "-")


@pytest.mark.slow
def test_bench_extra_is_exactly_what_the_main_job_imports(tmp_path):
    pytest.importorskip("torch")
    extras = _extras()
    bench = _requirements("bench", extras)
    core = {_name(r) for r in importlib.metadata.requires("turngym") or () if "extra" not in r}
    # A site-packages with only the core's and the bench extra's distributions (what a fresh
    # venv with `turngym[bench]` holds): whatever else is installed here (selenium, triton,
    # trio...) is invisible, so optional imports behave as they would there.
    site = tmp_path / "site-packages"
    site.mkdir()
    _site_with_only(_closure(bench | core) - {"turngym"}, site)
    code = (f"import importlib, json, sys\nfor m in {list(BENCH_MODULES)!r}: "
            "importlib.import_module(m)\nprint(json.dumps(sorted({m.split('.')[0] for m in "
            "sys.modules})))")  # fmt: skip
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env={"PYTHONPATH": f"{site}:{ROOT}", "PATH": ""})
    # Everything the main job imports comes with the core or the bench extra...
    assert out.returncode == 0, out.stderr[-3000:]
    dists = importlib.metadata.packages_distributions()
    imported = {_normal(d) for top in json.loads(out.stdout) for d in dists.get(top, ())}
    # ... and the extra asks for nothing the main job does not import.
    assert bench <= imported, bench - imported
    assert "torch==2.13.0" in extras["train"] and "turngym[train]" in extras["bench"]
    assert {"docker", "triton", "selenium", "ruff", "fastapi", "pandas"}.isdisjoint(
        _closure(bench))
