"""KernelGen works from a fresh editable install anywhere, a checkout under /tmp included.

Issue 17 item 4: a new user cloned the project under /tmp, installed it editable, and every
candidate failed to import turngym inside the sandbox. Here the tracked files are copied to a
fresh dir under /tmp, a venv is made there (with a ``.pth`` file pointing at this
environment's site-packages, so torch, pip and setuptools are not downloaded again), the
project is installed with ``pip install --no-deps --no-build-isolation -e``, and a separate ``python
-I`` (no ``PYTHONPATH``, cwd elsewhere) grades the oracle of a task through the env.
"""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

_SCRIPT = """
import turngym
from turngym.testing import check_env
assert turngym.__file__.startswith({clone!r}), turngym.__file__
env = turngym.make("turngym/KernelGen-v0", families=["relu"])
obs, info = env.reset(seed=0, options={{"split": "test"}})
obs, reward, terminated, truncated, info = env.step(env.unwrapped.oracle_action())
assert info["success"] and reward >= 0.5, obs
report = check_env("turngym/KernelGen-v0", only=["oracle"], families=["softmax"])
assert report.ok, report.results
print("ORACLE-OK", reward)
"""


@pytest.mark.slow
def test_oracle_succeeds_from_an_editable_install_under_tmp() -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    root = Path(tempfile.mkdtemp(prefix="turngym-clone-", dir="/tmp"))
    try:
        root.chmod(0o755)  # like a clone: other users may read it
        clone = root / "turngym"
        for name in filter(None, files):
            if (REPO / name).is_file():
                (clone / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, clone / name)
        venv = root / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        python = venv / "bin" / "python"
        where = "import site; print(site.getsitepackages()[0])"
        target = subprocess.run([str(python), "-c", where], capture_output=True, text=True,
                                check=True).stdout.strip()
        Path(target, "turngym-test-parent.pth").write_text("\n".join(site.getsitepackages()))
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps",
                        "--no-build-isolation", "-e", str(clone)], check=True, cwd=root)
        out = subprocess.run([str(python), "-I", "-c", _SCRIPT.format(clone=str(clone))],
                             capture_output=True, text=True, cwd="/", timeout=900)
        assert "ORACLE-OK" in out.stdout, out.stdout[-2000:] + out.stderr[-4000:]
    finally:
        shutil.rmtree(root, ignore_errors=True)
