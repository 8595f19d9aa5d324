"""Steps per second of every env through the public API, next to TextArena and GEM.

**turngym.** Every registered env id is built the way a user builds it (``turngym.make``, with
Gymnasium's wrappers; ``turngym.make_multiagent`` for the PettingZoo games) and played with
random valid moves: a random word of the word list (Wordle), a random hidden cell (Minesweeper),
a random legal move (board games, bargaining), an admissible command where the env lists them
(Household, Shop), else a random example action. Each episode starts from a fresh seed, so
task generation is part of the reset cost. Columns: ``step`` alone, ``step`` while reading
every step's ``info["privileged"]`` and ``info["metrics"]`` in full (for the games: every
seat's), and ``reset`` + ``step``. A turn-based game's step includes the ``last()`` that
builds the next seat's observation.

**Peers.** When ``textarena`` or ``gem-llm`` is installed, the same games are played there the
same way (TextArena's ``-raw`` envs, with ``get_observation()`` each turn; GEM's envs) and the
table shows turngym / peer. Their Wordle needs NLTK corpora (``--nltk-data`` points at a folder
holding them); a peer that cannot start is skipped with its error.

**How it is timed.** Each episode is first played with the random mover (untimed), then
replayed from the same seed with the recorded actions, and only the replay's steps are timed,
as one block per episode: choosing moves stays out of the figure, and no clock call sits
between two steps (a CPU-time clock is a system call, which itself slows the next step). The
reset is timed on the first play, when its task is drawn for the first time (after the 1 s
warm-up, which takes the integer-draw games past their split tables' warm-up of 1,000 draws:
with the ``fast`` extra those draws are compiled look-ups, see ``turngym/_split_table.py``).
Minesweeper's
no-guess layouts are memoised per (seed, first cell), so that memo is cleared before each
replay; they are drawn and checked by compiled code when the ``fast`` extra (numba) is
installed, else in Python (same layouts, several times slower first reveal). ``--clock cpu``
(default) counts this thread's CPU time, steady on a machine other jobs share; ``--clock
wall`` counts elapsed time. Every figure is the median of ``--repeats``
runs of ``--seconds`` each, on disjoint seeds, one thread.

**Shop index.** The 5,000-product Shop catalogue and its BM25 index, built cold and reloaded
from the disk cache (issue 7 target: <= 10 s).

**Long horizon.** ``turngym/Expedition-v0`` played for up to 300 turns per episode, oracle and
random policies (issue 20): its planned quests take 100-300 turns, so rollouts of that length
must be fast. Only ``env.step`` is timed; resets (world generation) are reported apart.

    python benchmarks/env_step_speed.py [--seconds 1] [--repeats 3] [--envs ID ...] [--no-peers]
        [--long-episodes 20]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import random
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

import turngym
from turngym.envs.games.minesweeper_solver import place_mines
from turngym.envs.games.wordle_solver import load_word_lists
from turngym.envs.multiagent.registry import is_multiagent, make_multiagent, multiagent_ids
from turngym.registry import env_registry

TARGET = 10_000
# Why an env stays under TARGET steps/s; printed next to it.
REASONS = {
    "turngym/KernelGen-v0": "each step compiles and runs the submitted program in a sandbox",
    "turngym/Minesweeper-v0": "the first reveal draws a no-guess layout (Python solver without "
    "the fast extra)",
    "turngym/ToolUse-v0": "each call runs SQL on an in-memory SQLite database",
    "turngym/SearchQA-v0": "each search is a BM25 query over the corpus",
    "turngym/Shop-v0": "each search is a BM25 query over the catalogue",
    "turngym/Countdown-v0": "answers are evaluated in exact rational arithmetic (Fraction)",
    "turngym/ComposedSearchQA-v0": "its SearchQA sub-task runs a BM25 query per search",
    "turngym/SeqRec-v0": "an episode is one step that matches every listed title to the "
    "catalogue and scores the whole list (NDCG and recall at several cutoffs)",
}
SKIP = {"turngym/KernelGen-v0"}  # seconds per step: measured by kernel_eval_throughput.py
CLOCK: list[Callable[[], float]] = [time.thread_time]
"""The clock of the timed blocks (set by ``--clock``)."""

Rates = tuple[float, float]
"""Steps per second of ``step`` alone, and of ``reset`` plus ``step``."""


# --- Games: one interface over turngym and the peers --------------------------------------------
class Game:
    """One env seen through ``reset(seed)``, ``step(action) -> done`` and a random valid move."""

    def reset(self, seed: int) -> None:
        """Start the episode of ``seed``."""
        raise NotImplementedError

    def step(self, action: str) -> bool:
        """Play one move (and build the next observation); whether the episode is over."""
        raise NotImplementedError

    def move(self, rng: random.Random) -> str:
        """A random valid move in the current state."""
        raise NotImplementedError

    def read(self) -> None:
        """Read the last step's privileged info and metrics in full (turngym only)."""

    def forget(self) -> None:
        """Drop memos keyed by the episode, so a replay does not reuse the first play's work."""


def _read_all(info: dict[str, Any]) -> int:
    return len(repr(info.get("privileged"))) + len(repr(info.get("metrics")))


class Single(Game):
    """A turngym single-agent env id, built with ``turngym.make``."""

    def __init__(self, env_id: str) -> None:
        self.env = turngym.make(env_id)
        self.base = self.env.unwrapped
        self.info: dict[str, Any] = {}
        self.kind = type(self.base).__name__

    def reset(self, seed: int) -> None:
        _, self.info = self.env.reset(seed=seed)

    def step(self, action: str) -> bool:
        _, _, terminated, truncated, self.info = self.env.step(action)
        return terminated or truncated

    def move(self, rng: random.Random) -> str:
        base = self.base
        if self.kind == "Wordle":
            return f"<action>{rng.choice(_words(len(base.secret)))}</action>"
        if self.kind == "Minesweeper":
            size, cols = base.rows * base.cols, base.cols
            cell = rng.randrange(size)
            while base.revealed[cell] or base.flagged[cell]:
                cell = rng.randrange(size)
            return f"<action>reveal {cell // cols} {cell % cols}</action>"
        admissible = getattr(base, "admissible_actions", None)
        options = admissible() if callable(admissible) else None
        return rng.choice(options or base.action_space.examples or ("",))

    def read(self) -> None:
        _read_all(self.info)

    def forget(self) -> None:
        place_mines.cache_clear()


class Multi(Game):
    """A turngym turn-based game (self-play), built with ``turngym.make_multiagent``."""

    def __init__(self, env_id: str) -> None:
        self.env = make_multiagent(env_id)

    def reset(self, seed: int) -> None:
        self.env.reset(seed=seed)
        self.env.last()

    def step(self, action: str) -> bool:
        self.env.step(action)
        _, _, terminated, truncated, _ = self.env.last()
        return terminated or truncated

    def move(self, rng: random.Random) -> str:
        env = self.env
        return rng.choice(env.legal_actions(env.agent_selection) or env.example_actions)

    def read(self) -> None:
        for info in self.env.infos.values():
            _read_all(info)


class TextArena(Game):
    """A TextArena ``-raw`` env; a step includes ``get_observation()`` for the next player."""

    def __init__(self, name: str) -> None:
        import textarena as ta

        self.env, self.name = ta.make(f"{name}-v0-raw"), name
        self.players = 2 if name == "TicTacToe" else 1

    def reset(self, seed: int) -> None:
        self.env.reset(num_players=self.players, seed=seed)
        self.env.get_observation()

    def step(self, action: str) -> bool:
        done, _ = self.env.step(action)
        self.env.get_observation()
        return done

    def move(self, rng: random.Random) -> str:
        env = self.env
        if self.name == "TicTacToe":
            board = env.state.game_state["board"]
            cell = rng.randrange(9)
            while board[cell // 3][cell % 3]:
                cell = rng.randrange(9)
            return f"[{cell}]"
        if self.name == "Minesweeper":
            r, c = rng.randrange(env.rows), rng.randrange(env.cols)
            while env.revealed[r][c]:
                r, c = rng.randrange(env.rows), rng.randrange(env.cols)
            return f"[{r} {c}]"
        return f"[{rng.choice(env.word_list)}]"  # Wordle


class Gem(Game):
    """A GEM game env."""

    IDS = {"Wordle": "game:Wordle-v0-hard", "Sokoban": "game:Sokoban-v0-easy",
           "Minesweeper": "game:Minesweeper-v0-hard"}  # fmt: skip
    KWARGS = {"Minesweeper": {"rows": 8, "cols": 8, "num_mines": 10, "max_turns": 64}}

    def __init__(self, name: str) -> None:
        import gem

        self.env, self.name = gem.make(self.IDS[name], **self.KWARGS.get(name, {})), name

    def reset(self, seed: int) -> None:
        self.env.reset(seed=seed)

    def step(self, action: str) -> bool:
        _, _, terminated, truncated, _ = self.env.step(action)
        return terminated or truncated

    def move(self, rng: random.Random) -> str:
        env = self.env
        if self.name == "Minesweeper":
            r, c = rng.randrange(env.rows), rng.randrange(env.cols)
            while env.revealed[r][c] or env.flags[r][c]:
                r, c = rng.randrange(env.rows), rng.randrange(env.cols)
            return f"\\boxed{{reveal {r} {c}}}"
        if self.name == "Sokoban":
            return f"\\boxed{{{rng.choice(('up', 'down', 'left', 'right'))}}}"
        return f"\\boxed{{{rng.choice(env.available_words)}}}"  # Wordle


_WORDS: dict[int, list[str]] = {}


def _words(length: int) -> list[str]:
    if length not in _WORDS:
        _WORDS[length] = sorted(load_word_lists()[1][length])
    return _WORDS[length]


# --- Timing -----------------------------------------------------------------------------------
def rates(game: Game, seconds: float, first: int, read: bool) -> Rates:
    """Play and replay episodes from seed ``first`` on for ``seconds`` of wall time."""
    clock, rng = CLOCK[0], random.Random(first)
    steps, stepping, resetting = 0, 0.0, 0.0
    seed, stop = first, time.perf_counter() + seconds
    while time.perf_counter() < stop:
        start = clock()
        game.reset(seed)
        resetting += clock() - start
        actions, done = [], False
        while not done:
            actions.append(game.move(rng))
            done = game.step(actions[-1])
        game.forget()
        game.reset(seed)
        start = clock()
        for action in actions:
            game.step(action)
            if read:
                game.read()
        stepping += clock() - start
        steps, seed = steps + len(actions), seed + 1
    return steps / stepping, steps / (stepping + resetting)


def measure(make: Callable[[], Game], seconds: float, repeats: int, read: bool = False) -> Rates:
    """Median rates over ``repeats`` runs on disjoint seeds (no task is drawn twice)."""
    game = make()
    rates(game, 1.0, 10**8, read)  # warm-up: imports, word lists, indexes, memos, split tables
    runs = [rates(game, seconds, r * 10**6, read) for r in range(repeats)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def turngym_game(env_id: str) -> Callable[[], Game]:
    """The factory of a turngym env id's game."""
    return (lambda: Multi(env_id)) if is_multiagent(env_id) else (lambda: Single(env_id))


def peer(kind: type[Game], name: str | None, seconds: float, repeats: int) -> Rates | str:
    """Median rates of a peer game, or why it could not run."""
    if name is None:
        return "-"
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            game = kind(name)  # NLTK prints its failed downloads; the row says what failed
        return measure(lambda: game, seconds, repeats)
    except Exception as err:  # a peer missing data (NLTK corpora) or not installed
        lines = [line.strip() for line in str(err).splitlines() if any(map(str.isalpha, line))]
        return f"skipped ({type(err).__name__}: {lines[0][:60] if lines else ''})"


# --- Tables ---------------------------------------------------------------------------------------
PEERS = {  # game -> (turngym id, TextArena name or None, GEM name or None)
    "Wordle": ("turngym/Wordle-v0", "Wordle", "Wordle"),
    "Minesweeper 8x8, 10 mines": ("turngym/Minesweeper-v0", "Minesweeper", "Minesweeper"),
    "TicTacToe (self-play)": ("turngym/TicTacToe-v0", "TicTacToe", None),
    "Sokoban 6x6": ("turngym/Sokoban-v0", None, "Sokoban"),
}


def env_table(ids: list[str], seconds: float, repeats: int) -> list[str]:
    """One row per env id: step rates plain and with privileged reads, and the verdict."""
    rows = []
    for env_id in ids:
        if env_id in SKIP:
            rows.append(f"| {env_id} | - | - | - | {REASONS[env_id]} |")
            continue
        try:
            plain = measure(turngym_game(env_id), seconds, repeats)
            read = measure(turngym_game(env_id), seconds, repeats, read=True)
        except Exception as err:  # an env another engineer is still building
            last = traceback.format_exception_only(type(err), err)[-1].strip()
            rows.append(f"| {env_id} | - | - | - | skipped: {last[:80]} |")
            continue
        verdict = "ok" if min(plain[0], read[0]) >= TARGET else REASONS.get(env_id, "BELOW")
        rows.append(f"| {env_id} | {plain[0]:,.0f} | {read[0]:,.0f} | {plain[1]:,.0f} "
                    f"| {verdict} |")  # fmt: skip
    return rows


def _cells(rates: Rates | str) -> str:
    return f"{rates[0]:,.0f} | {rates[1]:,.0f}" if isinstance(rates, tuple) else f"{rates} | -"


def _ratio(ours: Rates, other: Rates | str) -> str:
    if not isinstance(other, tuple):
        return "- | -"
    return f"{ours[0] / other[0]:.2f} | {ours[1] / other[1]:.2f}"


def peer_table(seconds: float, repeats: int) -> list[str]:
    """One row per game played in turngym and in its peers, with the ratios."""
    rows = []
    for game, (env_id, ta_name, gem_name) in PEERS.items():
        ours = measure(turngym_game(env_id), seconds, repeats)
        ta = peer(TextArena, ta_name, seconds, repeats)
        gm = peer(Gem, gem_name, seconds, repeats)
        rows.append(f"| {game} | {ours[0]:,.0f} | {ours[1]:,.0f} | {_cells(ta)} | "
                    f"{_ratio(ours, ta)} | {_cells(gm)} | {_ratio(ours, gm)} |")  # fmt: skip
    return rows


def index_table(size: int = 5000, target: float = 10.0) -> list[str]:
    """Cold build (empty cache dir) and warm reload (from disk) of the Shop catalogue index."""
    from turngym.envs.shop import catalog as catalog_module
    from turngym.retrieval import bm25

    rows = []
    with tempfile.TemporaryDirectory() as cache:
        previous = os.environ.get("TURNGYM_CACHE")
        os.environ["TURNGYM_CACHE"] = cache
        try:
            for label in ("cold", "warm"):
                catalog_module.get_catalog.cache_clear()
                bm25.clear_memory_cache()
                start = time.perf_counter()
                catalog = catalog_module.get_catalog(size)
                generated = time.perf_counter()
                _ = catalog.index
                done = time.perf_counter()
                ok = "ok" if done - generated <= target else "MISSED"
                rows.append(f"| {label} | {size:,} | {generated - start:.3f} "
                            f"| {done - generated:.3f} | <= {target:.0f} s: {ok} |")  # fmt: skip
        finally:
            if previous is None:
                os.environ.pop("TURNGYM_CACHE", None)
            else:
                os.environ["TURNGYM_CACHE"] = previous
            catalog_module.get_catalog.cache_clear()
            bm25.clear_memory_cache()
    return rows


LONG_ENV_ID = "turngym/Expedition-v0"


def long_horizon_table(episodes: int, seed: int = 0, turns: int = 300) -> list[str]:
    """Steps/s of ``turns``-turn Expedition rollouts, oracle and random policies.

    Each rollout resets a test task and steps until it ends or ``turns`` steps pass (the
    oracle usually finishes its 100-300-turn quest first; the random policy plays all 300).
    """
    rows = []
    for policy in ("oracle", "random"):
        env, rng = turngym.make(LONG_ENV_ID, max_episode_steps=turns), random.Random(seed)
        step_s = reset_s = 0.0
        steps = []
        for episode in range(episodes):
            start = time.perf_counter()
            env.reset(seed=episode, options={"split": "test"})
            reset_s += time.perf_counter() - start
            n, done = 0, False
            while not done:
                if policy == "oracle":
                    action = env.unwrapped.oracle_action()  # type: ignore[attr-defined]
                else:
                    action = rng.choice(env.action_space.examples)  # type: ignore[attr-defined]
                start = time.perf_counter()
                _, _, terminated, truncated, _ = env.step(action)
                step_s += time.perf_counter() - start
                n, done = n + 1, terminated or truncated
            steps.append(n)
        rows.append(
            f"| {policy} | {episodes} | {statistics.mean(steps):.0f} | {sum(steps) / step_s:,.0f} "
            f"| {reset_s / episodes * 1e3:.0f} |"
        )
    return rows


def main() -> None:
    """Print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="wall time per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--envs", nargs="*", help="env ids (default: every registered one)")
    parser.add_argument("--no-peers", action="store_true", help="skip the TextArena/GEM table")
    parser.add_argument("--no-index", action="store_true", help="skip the Shop index table")
    parser.add_argument("--long-episodes", type=int, default=20,
                        help="300-turn Expedition rollouts per policy (0: skip that table)")
    parser.add_argument("--nltk-data", help="NLTK data folder for the peers' Wordle (NLTK_DATA)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="this thread's CPU time, or elapsed time")  # fmt: skip
    args = parser.parse_args()
    CLOCK[0] = time.thread_time if args.clock == "cpu" else time.perf_counter
    if args.nltk_data:
        os.environ["NLTK_DATA"] = args.nltk_data
    ids = args.envs or sorted(  # turngym's own ids (adapted textarena/... ids run TextArena)
        i for i in {*env_registry.names(), *multiagent_ids()} if i.startswith("turngym/")
    )
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs "
          f"visible, Python {platform.python_version()}; medians of {args.repeats} x "
          f"{args.seconds:g} s, {args.clock} clock")  # fmt: skip
    print("\nSteps/s with random valid moves and a fresh seed per episode: step alone, step "
          "while reading privileged info and metrics every step, and reset + step\n")  # fmt: skip
    print(f"| env | step | step + privileged read | reset + step | step >= {TARGET:,}/s |")
    print("|---|---:|---:|---:|---|")
    print("\n".join(env_table(ids, args.seconds, args.repeats)), flush=True)
    if not args.no_peers:
        print("\nSide by side: steps/s of step alone | of reset + step; ratio = turngym / peer\n")
        print("| game | turngym step | turngym reset+step | TextArena step | TextArena reset+step "
              "| ratio step | ratio reset+step | GEM step | GEM reset+step | ratio step "
              "| ratio reset+step |")  # fmt: skip
        print("|---|" + "---:|" * 10)
        print("\n".join(peer_table(args.seconds, args.repeats)), flush=True)
    if not args.no_index:
        print("\nShop index (5,000 products): catalogue generation and BM25 index, seconds\n")
        print("| cache | products | catalogue s | index s | target |")
        print("|---|---:|---:|---:|---|")
        print("\n".join(index_table()))
    if args.long_episodes > 0:
        print(f"\n{LONG_ENV_ID}: rollouts of up to 300 turns, {args.long_episodes} test tasks, "
              "wall clock\n")  # fmt: skip
        print("| policy | episodes | mean turns | steps/s | reset ms |")
        print("|---|---:|---:|---:|---:|")
        print("\n".join(long_horizon_table(args.long_episodes)))


if __name__ == "__main__":
    main()
