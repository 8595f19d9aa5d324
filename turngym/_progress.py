"""A progress bar for the rollout engines: rich when shown, a no-op otherwise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["progress_bar"]


class progress_bar:  # noqa: N801  (used like a function: ``with progress_bar(on, n) as advance``)
    """Context manager yielding ``advance(n)``; a rich bar when enabled, a no-op otherwise."""

    def __init__(self, enabled: bool, total: int, label: str = "episodes") -> None:
        """Show a bar of ``total`` steps named ``label`` if ``enabled``."""
        self.enabled = enabled
        self.total = total
        self.label = label
        self.bar: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda n: None
        from rich.progress import Progress  # imported only when a bar is shown

        self.bar = Progress(transient=True)
        self.bar.start()
        task = self.bar.add_task(self.label, total=self.total)
        return lambda n: self.bar.advance(task, n) if n else None

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
