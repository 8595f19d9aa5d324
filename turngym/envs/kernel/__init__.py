"""Kernel generation (issues 8 and 17): KernelBench-style tasks graded from outside the candidate.

* :mod:`~turngym.envs.kernel.tasks`: reference ``Model`` modules at three levels, oracles;
* :mod:`~turngym.envs.kernel.grader`: the grader (fresh inputs, outputs over a private
  channel, graph replay for an honest cost, outside CPU measurement, verdicts);
* :mod:`~turngym.envs.kernel.harness`: the sandboxed children's side (reference, candidate,
  replay roles); :mod:`~turngym.envs.kernel.channel`: the channel and its strict decoder;
  :mod:`~turngym.envs.kernel.graph`: ATen graph capture and replay;
* :mod:`~turngym.envs.kernel.cost`: the deterministic cost model;
* :mod:`~turngym.envs.kernel.hacks`: static checks and in-process monitors (second line);
* :mod:`~turngym.envs.kernel.reward`: the KernelGYM-shaped reward;
* :mod:`~turngym.envs.kernel.runner`: pre-screening, grading, the result cache;
* :mod:`~turngym.envs.kernel.sandbox`: the process sandbox (walls, pool);
  :mod:`~turngym.envs.kernel.forkserver`: the warm template that forks walled children;
* :mod:`~turngym.envs.kernel.env`: the ``turngym/KernelGen-v0`` env.

Importing this package imports no torch; the env needs torch only once it grades.
"""
