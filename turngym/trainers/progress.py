"""Progress you can see: live bars on a terminal, one line per eval point otherwise.

A trainer reports a :class:`ProgressEvent` after every iteration. :func:`make_reporter` picks
how events are shown (``TrainConfig.progress``):

* ``"bar"``: a live rich progress bar (env steps or iterations, success so far, ETA);
* ``"lines"``: one line per eval point and one at the end (logs, CI, pipes);
* ``"off"``: nothing;
* ``"auto"`` (the default): ``bar`` when stderr is a terminal, ``lines`` otherwise.

``turngym bench`` runs trainers in worker processes: they send their events to the parent
(:class:`QueueReporter`), which shows every run at once (:class:`MultiRunDisplay`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TextIO

__all__ = [
    "PROGRESS_MODES",
    "ProgressEvent",
    "format_event",
    "make_reporter",
    "LineReporter",
    "QueueReporter",
    "MultiRunDisplay",
]

PROGRESS_MODES = ("auto", "bar", "lines", "off")
"""Values of ``TrainConfig.progress``."""


@dataclass(frozen=True)
class ProgressEvent:
    """Where a training run stands after one iteration.

    Attributes:
        run: Name of the run (its directory name).
        iteration: Iterations done.
        env_steps: Env steps spent.
        total: The budget, in ``unit``s (env steps when the run has an env-step budget).
        done: How much of ``total`` is spent.
        unit: ``"env steps"`` or ``"iterations"``.
        elapsed_s: Wall-clock seconds of training so far (resumed runs included).
        success: Success of the latest evaluation, or ``None`` before the first one.
        evaluated: Whether this iteration ended with an evaluation.
        final: Whether this is the run's last iteration.
    """

    run: str
    iteration: int
    env_steps: int
    total: float
    done: float
    unit: str
    elapsed_s: float
    success: float | None
    evaluated: bool
    final: bool

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the pace so far (``None`` until something was spent)."""
        if self.done <= 0 or self.total <= 0:
            return None
        return max(0.0, self.elapsed_s * (self.total - self.done) / self.done)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (picklable across processes)."""
        return asdict(self)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def format_event(event: ProgressEvent) -> str:
    """One line: run, iteration, env steps, success so far, elapsed and ETA.

    Example:
        >>> e = ProgressEvent("grpo__s0", 8, 1200, 2400, 1200, "env steps", 30.0, 0.5, True,
        ...                   False)
        >>> format_event(e)
        'grpo__s0: iteration 8, env steps 1,200/2,400, success 0.500, elapsed 30s, ETA 30s'
    """
    success = "-" if event.success is None else f"{event.success:.3f}"
    budget = (f"env steps {event.env_steps:,}/{int(event.total):,}" if event.unit == "env steps"
              else f"env steps {event.env_steps:,}")  # fmt: skip
    iteration = (f"iteration {event.iteration}/{int(event.total)}" if event.unit == "iterations"
                 else f"iteration {event.iteration}")  # fmt: skip
    eta = "done" if event.final else f"ETA {_clock(event.eta_s)}"
    return (f"{event.run}: {iteration}, {budget}, success {success}, "
            f"elapsed {_clock(event.elapsed_s)}, {eta}")  # fmt: skip


class LineReporter:
    """Prints one line per eval point and one for the final iteration."""

    def __init__(self, stream: TextIO | None = None) -> None:
        """Print to ``stream`` (default: stderr at the time of each event)."""
        self.stream = stream

    def __call__(self, event: ProgressEvent) -> None:
        """Show ``event`` if it is an eval point or the end."""
        if event.evaluated or event.final:
            print(format_event(event), file=self.stream or sys.stderr, flush=True)

    def close(self) -> None:
        """Nothing to release."""


class _BarReporter:
    """A live rich progress bar for one run."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                             TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
                             transient=False)  # fmt: skip
        self._task: Any = None

    def __call__(self, event: ProgressEvent) -> None:
        if self._task is None:
            self._bar.start()
            self._task = self._bar.add_task(event.run, total=event.total, status="")
        status = format_event(event).split(": ", 1)[1].rsplit(", elapsed", 1)[0]
        self._bar.update(self._task, completed=event.done, status=status)

    def close(self) -> None:
        if self._task is not None:
            self._bar.stop()


class _Silent:
    def __call__(self, event: ProgressEvent) -> None:
        return None

    def close(self) -> None:
        return None


def make_reporter(mode: str, stream: TextIO | None = None) -> Any:
    """A reporter for ``mode`` (module docstring); call it with events, then ``close()``.

    Raises:
        ValueError: ``mode`` is not one of :data:`PROGRESS_MODES`.
    """
    if mode not in PROGRESS_MODES:
        raise ValueError(f"progress must be one of {list(PROGRESS_MODES)}, got {mode!r}")
    if mode == "auto":
        mode = "bar" if (stream or sys.stderr).isatty() else "lines"
    if mode == "bar":
        return _BarReporter()
    if mode == "lines":
        return LineReporter(stream)
    return _Silent()


class QueueReporter:
    """Sends events to a parent process through a (manager) queue; see :class:`MultiRunDisplay`."""

    def __init__(self, queue: Any) -> None:
        """Put events on ``queue``."""
        self.queue = queue

    def __call__(self, event: ProgressEvent) -> None:
        """Forward ``event`` as a dict."""
        self.queue.put(event.to_dict())

    def close(self) -> None:
        """Nothing to release."""


class MultiRunDisplay:
    """Shows the events of many runs: one bar per run, or one line per eval point."""

    def __init__(self, mode: str, say: Callable[[str], None], stream: TextIO | None = None) -> None:
        """``say`` prints lines (line mode); bars go to ``stream`` (default stderr)."""
        if mode not in PROGRESS_MODES:
            raise ValueError(f"progress must be one of {list(PROGRESS_MODES)}, got {mode!r}")
        if mode == "auto":
            mode = "bar" if (stream or sys.stderr).isatty() else "lines"
        self.mode, self.say = mode, say
        self._tasks: dict[str, Any] = {}
        self._bar: Any = None
        if mode == "bar":
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
                                 console=Console(file=stream or sys.stderr))  # fmt: skip
            self._bar.start()

    def __call__(self, data: dict[str, Any]) -> None:
        """Show one event (as sent by :class:`QueueReporter`)."""
        event = ProgressEvent(**data)
        if self.mode == "lines" and (event.evaluated or event.final):
            self.say("  " + format_event(event))
        elif self._bar is not None:
            if event.run not in self._tasks:
                self._tasks[event.run] = self._bar.add_task(event.run, total=event.total,
                                                            status="")  # fmt: skip
            status = format_event(event).split(": ", 1)[1].rsplit(", elapsed", 1)[0]
            self._bar.update(self._tasks[event.run], completed=event.done, status=status)

    put = __call__  # so that a worker in this process can report to it like to a queue

    def close(self) -> None:
        """Stop the bars."""
        if self._bar is not None:
            self._bar.stop()
