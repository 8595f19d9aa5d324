import pytest

from turngym.evals.suites import EvalEntry, builtin_env_ids, resolve_entries, suite_registry
from turngym.registry import UnknownNameError


@pytest.mark.parametrize("suite", ["smoke", "quick", "full"])
def test_every_builtin_env_is_in_every_suite(suite):
    ids = {e.env_id for e in resolve_entries([suite])}
    assert ids == set(builtin_env_ids()) and ids


def test_full_suite_covers_every_level():
    levels = {(e.env_id, e.options.get("level")) for e in resolve_entries(["full"])}
    assert ("turngym/Sokoban-v0", 3) in levels and ("turngym/FrozenLake-v0", 4) in levels


def test_env_ids_and_suites_mix_without_duplicates_and_episodes_override():
    entries = resolve_entries(["smoke", "turngym/Sokoban-v0", "smoke"], episodes=2)
    assert len(entries) == len(builtin_env_ids()) and {e.episodes for e in entries} == {2}


@pytest.mark.parametrize(("name", "hint"), [("quik", "quick"), ("turngym/Sokobn-v0", "Sokoban")])
def test_unknown_names_suggest(name, hint):
    with pytest.raises(UnknownNameError, match=hint):
        resolve_entries([name])


def test_users_register_suites():
    suite_registry.register("tests-mine", [EvalEntry("turngym/Sokoban-v0", episodes=1)])
    assert resolve_entries(["tests-mine"])[0].episodes == 1
    with pytest.raises(ValueError, match="episodes"):
        EvalEntry("turngym/Sokoban-v0", episodes=0)


def test_labels_name_non_default_options():
    assert EvalEntry("X-v0", options={"level": 2}).label == "X-v0 (level=2)"
    assert EvalEntry("X-v0").label == "X-v0"


def test_cli_lists_suites():
    import io

    from turngym.cli import main

    buf = io.StringIO()
    assert main(["list", "suites"], stdout=buf) == 0
    assert {"smoke", "quick", "full"} <= set(buf.getvalue().split())
