"""Adapters that bring env suites users already have into turngym (each an optional extra).

* :mod:`~turngym.envs.adapters.textarena`: TextArena's single-player games as ``TextEnv`` s
  (``textarena/<Game>-v0``; registered when the ``textarena`` package is installed).
* :mod:`~turngym.envs.adapters.textworld`: TextWorld games (``tw-make``) and ALFWorld.
* :mod:`~turngym.envs.adapters.openenv`: any OpenEnv server as a turngym env
  (``openenv+ws://host:port``).
"""
