"""Where rollouts, evals and training runs execute: ``local`` (this machine) or ``ray``.

The ``local`` backend is the embedded default: envs in this process (a thread pool for slow
ones), bench runs in a local process pool. ``ray`` hands the same work to a Ray cluster
(``pip install 'turngym[ray]'``) without changing the API: ``collect(..., backend="ray")``,
``turngym eval --backend ray``, ``turngym bench --backend ray``; see
:mod:`turngym.backends.ray_rollout`, :mod:`turngym.backends.ray_bench` and
:mod:`turngym.backends.ray_kernel`. Nothing here imports Ray until a Ray backend is used.
"""

from __future__ import annotations

__all__ = ["BACKENDS", "check_backend"]

BACKENDS = ("local", "ray")
"""Backend names accepted by ``collect``, ``turngym eval`` and ``turngym bench``."""


def check_backend(name: str) -> str:
    """Return ``name`` if it is a known backend; raise one clear line otherwise.

    Example:
        >>> check_backend("ray")
        'ray'
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name
