"""Kernel generation (issue 8): KernelBench-style tasks graded in a sandboxed child process.

* :mod:`~turngym.envs.kernel.tasks`: reference ``Model`` modules at three levels, oracles;
* :mod:`~turngym.envs.kernel.evaluate`: the evaluation child (correctness, cost, hack checks);
* :mod:`~turngym.envs.kernel.cost`: the deterministic cost model;
* :mod:`~turngym.envs.kernel.hacks`: in-process reward-hack detection;
* :mod:`~turngym.envs.kernel.reward`: the KernelGYM-shaped reward;
* :mod:`~turngym.envs.kernel.runner`: pre-screening, sandboxed runs, the result cache;
* :mod:`~turngym.envs.kernel.sandbox`: the process sandbox and pool;
* :mod:`~turngym.envs.kernel.env`: the ``turngym/KernelGen-v0`` env.

Importing this package imports no torch; the env itself needs torch only in the child.
"""
