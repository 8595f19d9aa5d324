"""Every failure a user can fix is one line on stderr saying what and what to do; usage = exit 2."""

from __future__ import annotations

import argparse
import importlib
import io
import json
import warnings

import gymnasium
import pytest

import turngym
from turngym.cli import _parser, main
from turngym.registry import env_registry


def run(argv, stdin: str = "") -> tuple[int, str]:
    out = io.StringIO()
    return main(argv, stdout=out, stdin=io.StringIO(stdin)), out.getvalue()


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    return lines[0]


# --- train configs ------------------------------------------------------------------------------
def test_malformed_yaml_config(tmp_path, capsys):
    pytest.importorskip("yaml")
    path = tmp_path / "run.yaml"
    path.write_text("iterations: 2\n  estimator: [grpo\n")
    assert run(["train", "--config", str(path)])[0] == 2
    assert one_line(capsys.readouterr().err) == (
        f"turngym train: {path}: not valid YAML (mapping values are not allowed here at line "
        "2, column 12); check the indentation, colons and quotes there")


def test_malformed_json_config_and_missing_file(tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_text('{"iterations": 2,}')
    assert run(["train", "--config", str(path)])[0] == 2
    assert "not valid JSON (Expecting property name enclosed in double quotes at line 1, " \
        "column 18)" in one_line(capsys.readouterr().err)  # fmt: skip
    assert run(["train", "--config", str(tmp_path / "nope.yaml")])[0] == 2
    assert one_line(capsys.readouterr().err) == (
        f"turngym train: cannot read config file {tmp_path / 'nope.yaml'}: No such file or "
        "directory")


@pytest.mark.parametrize(("text", "message"), [
    ("iterations: two\n", "iterations must be an integer, got 'two' (str)"),
    ("learning_rate: 1e-3\n", "learning_rate must be a number, got '1e-3' (str); YAML reads "
     "1e-3 as text, write 1.0e-3"),
    ("stop: </action>\n", "stop must be a list of strings, got '</action>' (str)"),
    ("max_turns: 2.5\n", "max_turns must be an integer or null, got 2.5 (float)"),
    ("env_options: [1]\n", "env_options must be a mapping, got [1] (list)"),
    ("include_instructions: maybe\n", "include_instructions must be true or false, got 'maybe' "
     "(str)"),
])  # fmt: skip
def test_wrong_typed_config_values(tmp_path, capsys, text, message):
    pytest.importorskip("yaml")
    path = tmp_path / "run.yaml"
    path.write_text(text)
    assert run(["train", "--config", str(path)])[0] == 2
    assert one_line(capsys.readouterr().err) == f"turngym train: {path}: {message}"


def test_config_types_are_checked_before_anything_else():
    from turngym._fieldtypes import ConfigTypeError
    from turngym.trainers.config import TrainConfig

    with pytest.raises(ConfigTypeError, match=r"^iterations must be an integer, got 'two'"):
        TrainConfig(iterations="two")  # used to fail on '<' inside __post_init__
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        TrainConfig(iterations=0)  # the value checks still run after the type checks


def test_bad_flag_value_is_one_line(capsys):
    assert run(["train", "--iterations", "two"])[0] == 2
    assert one_line(capsys.readouterr().err) == (
        "turngym train: error: argument --iterations: invalid int value: 'two' (see turngym "
        "train --help)")


# --- agents -------------------------------------------------------------------------------------
def test_oracle_on_a_served_env_without_an_oracle(capsys):
    pytest.importorskip("fastapi")
    from server._loopback import serve_app

    with serve_app(["turngym/FrozenLake-v0"]) as served:
        remote = served.remote("turngym/FrozenLake-v0")
        assert run(["rollout", remote, "--agent", "oracle", "--tasks", "1"])[0] == 2
    # The server refuses: the oracle reads the ground truth, so only --privileged serves it.
    assert one_line(capsys.readouterr().err) == (
        "turngym rollout: The oracle reads the env's ground truth, so only a server started "
        "with --privileged answers it (`turngym serve ENV_ID --privileged`, for trusted clients "
        "only). (code VALIDATION_ERROR)")


def test_oracle_on_a_local_env_without_one(capsys):
    gymnasium.register(id="test/NoOracle-v0", entry_point="toy_envs:Counter",
                       max_episode_steps=5)  # fmt: skip
    try:
        import toy_envs

        orig = toy_envs.Counter.oracle_action
        del toy_envs.Counter.oracle_action  # TextEnv's default raises NotImplementedError
        try:
            assert run(["rollout", "test/NoOracle-v0", "--agent", "oracle"])[0] == 2
        finally:
            toy_envs.Counter.oracle_action = orig
    finally:
        gymnasium.registry.pop("test/NoOracle-v0")
    assert one_line(capsys.readouterr().err) == (
        "turngym rollout: test/NoOracle-v0 has no oracle (no solver behind oracle_action); pick "
        "another agent")


def test_missing_hf_path_creates_no_run_directory(tmp_path, capsys):
    pytest.importorskip("transformers")
    out = tmp_path / "runs" / "mine"
    code = run(["eval", "turngym/FrozenLake-v0", "--agents", f"hf:{tmp_path}/no-such-model",
                "--out", str(out)])[0]  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert one_line(err) == (
        f"turngym eval: hf:{tmp_path}/no-such-model: no model there: not a local model "
        "directory, and not in the local Hugging Face cache (turngym never downloads); pass "
        "the directory of a saved model, e.g. the checkpoint/ folder of a `turngym train` run")
    assert "kept in" not in err and not out.exists()


# --- plugins ------------------------------------------------------------------------------------
@pytest.fixture
def broken_plugin(tmp_path, monkeypatch):
    from turngym import registry

    info = tmp_path / "broken_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken_plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[turngym.envs]\nbroken = no_such_module:register\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.setattr(env_registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry, "_WARNED", set())
    yield
    env_registry.load_plugins(force=True)  # forget the plugin once it is off sys.path


def test_broken_plugin_warns_once_per_process(broken_plugin):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            env_registry.load_plugins(force=True)
        with pytest.raises(KeyError):
            env_registry.get("broken/Foo-v0")
    messages = [str(w.message) for w in caught]
    assert messages == ["turngym: skipping turngym.envs plugin 'broken' (no_such_module:register)"
                        ": ModuleNotFoundError: No module named 'no_such_module'"]  # fmt: skip


def test_broken_plugin_is_named_when_its_id_is_asked_for(broken_plugin, capsys):
    assert run(["check", "broken/Foo-v0"])[0] == 2
    warning, error = capsys.readouterr().err.strip().splitlines()
    assert warning == ("turngym: warning: skipping turngym.envs plugin 'broken' "
                       "(no_such_module:register): ModuleNotFoundError: No module named "
                       "'no_such_module'")  # fmt: skip
    assert error == (
        "turngym check: Unknown env id 'broken/Foo-v0': the turngym.envs plugin 'broken' "
        "(no_such_module:register) that would provide it failed to load (ModuleNotFoundError: "
        "No module named 'no_such_module'). Fix or reinstall the package that declares it; "
        "`turngym list plugins` shows every plugin's status.")
    # Other ids keep working and keep their did-you-mean.
    assert run(["check", "turngym/FrozenLak-v0"])[0] == 2
    assert "Did you mean 'turngym/FrozenLake-v0'" in capsys.readouterr().err


# --- help, options, play -----------------------------------------------------------------------
def _parsers(parser: argparse.ArgumentParser, prog: str = "turngym"):
    yield prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{prog} {name}")


def test_every_help_is_plain_text():
    helps = {prog: p.format_help() for prog, p in _parsers(_parser())}
    assert len(helps) > 15  # every subcommand and sub-subcommand
    for prog, text in helps.items():
        for markup in ("``", ":data:`", ":func:`", ":class:`", ":mod:`", ":meth:`"):
            assert markup not in text, f"{prog} --help shows {markup!r}"
    train = helps["turngym train"]
    assert "AGGREGATIONS" not in train and "seq-mean-token-sum-norm" in train


def test_help_text_renders_rest():
    from turngym._cliargs import plain_text

    assert plain_text("see :func:`~turngym.rollout.collect` and ``--tasks``") == \
        "see collect and --tasks"  # fmt: skip
    assert plain_text(":class:`the store <turngym.leaderboard.store.LeaderboardStore>`") == \
        "the store"  # fmt: skip


def test_difficulty_takes_yaml_flow_style_or_says_what_to_write(capsys):
    code, out = run(["rollout", "turngym/FrozenLake-v0", "--difficulty", "{size: 5}",
                     "--tasks", "2", "--json"])  # fmt: skip
    assert code == 0 and json.loads(out)["episodes"] == 2
    assert run(["rollout", "turngym/FrozenLake-v0", "--difficulty", "size=5"])[0] == 2
    assert one_line(capsys.readouterr().err) == (
        "turngym rollout: error: argument --difficulty: expected a mapping such as "
        "'{\"size\": 5}' (JSON) or '{size: 5}', got 'size=5' (see turngym rollout --help)")


def test_play_again_moves_to_the_next_task(counter_id):
    env = turngym.make(counter_id)
    targets = [env.reset(seed=s, options={"split": "test"})[1]["privileged"]["target"]
               for s in (0, 1)]  # fmt: skip
    assert targets[0] != targets[1]
    # 15 invalid actions hit the time limit; "y" plays again; then show the task's ground truth.
    stdin = "bogus\n" * 15 + "y\n:privileged\n:quit\n"
    code, out = run(["play", counter_id, "--seed", "0"], stdin=stdin)
    assert code == 0
    assert "Play again?" in out and "New task (seed 1)." in out
    after = out.split("New task (seed 1).", 1)[1]
    assert f'"target": {targets[1]}' in after


def test_missing_extra_is_one_line(monkeypatch, capsys):
    import turngym.cli as cli

    def no_torch(args, out, stdin):  # what `import torch` raises without the train extra
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(cli, "_dispatch", no_torch)
    assert run(["bench", "--no-submit"])[0] == 2
    assert one_line(capsys.readouterr().err) == (
        "turngym bench: this needs torch, which is not installed: pip install 'turngym[train]'")


def test_unknown_subcommand_is_one_line(capsys):
    assert run(["rollot"])[0] == 2
    assert one_line(capsys.readouterr().err).startswith(
        "turngym: error: argument command: invalid choice: 'rollot'")



# --- the same classes in other subcommands -----------------------------------------------------
def test_bench_recipe_errors_before_any_training(tmp_path, capsys):
    out = tmp_path / "bench"
    assert run(["bench", "--recipe", "{iterations: 2}", "--no-submit", "--out", str(out)])[0] == 2
    assert one_line(capsys.readouterr().err) == (
        "turngym bench: --recipe cannot set iterations: the bench sets them for each run; use "
        "--envs, --options, --estimators, --params, --seeds, --env-steps, --eval-every or "
        "--eval-tasks instead")
    code = run(["bench", "--recipe", "{learning_rate: fast}", "--estimators", "grpo",
                "--baselines", "--no-submit", "--out", str(out)])[0]  # fmt: skip
    assert code == 2 and not out.exists()
    assert one_line(capsys.readouterr().err) == (
        "turngym bench: learning_rate must be a number, got 'fast' (str)")


def test_train_with_a_missing_model_directory(tmp_path, capsys):
    pytest.importorskip("transformers")
    model = tmp_path / "no-model"
    assert run(["train", "--model", str(model), "--out-dir", str(tmp_path / "run")])[0] == 2
    assert one_line(capsys.readouterr().err) == (
        f"turngym train: --model {model}: no model there: not a local model directory (turngym "
        "never downloads); pass the directory of a saved model, e.g. the checkpoint/ folder of "
        "a `turngym train` run, or 'tiny'")
    assert not (tmp_path / "run").exists()


def test_unknown_claim_goes_to_stderr(capsys):
    code, out = run(["repro", "no-such-claim"])
    assert code == 2 and out == ""
    assert one_line(capsys.readouterr().err).startswith(
        "turngym repro: Unknown claim 'no-such-claim'.")
