from __future__ import annotations

import importlib
import sys
import textwrap

import gymnasium
import pytest

import turngym
import turngym.registry as registry_module
from turngym.registry import Registry, UnknownNameError, env_namespace, env_registry


def one() -> int:
    return 1


def test_lazy_entries_resolve_on_first_use():
    reg = Registry[object]("thing")
    reg.register("toy", "toy_envs:Counter")
    from toy_envs import Counter

    assert reg.get("toy") is Counter
    reg.register("toy", Counter)  # upgrading the placeholder to its object is a no-op


def test_collision_guard():
    reg = Registry[object]("thing")
    reg.register("one", one)
    reg.register("one", one)  # same object: fine
    with pytest.raises(ValueError, match="already registered"):
        reg.register("one", lambda: 1)


def test_unknown_name_suggests():
    reg = Registry[object]("estimator")
    reg.register("grpo", one)
    reg.register("rloo", one)
    with pytest.raises(UnknownNameError) as info:
        reg.get("gpro")
    assert "Did you mean 'grpo'" in str(info.value) and "Known estimators: grpo, rloo" in str(
        info.value
    )


def test_make_unknown_env_suggests():
    with pytest.raises(UnknownNameError, match="Did you mean 'turngym/Sokoban-v0'"):
        turngym.make("turngym/Sokobn-v0")


def test_env_namespace_helper():
    with env_namespace("nstest"):
        gymnasium.register(id="Counter-v9", entry_point="toy_envs:Counter")
    assert "nstest/Counter-v9" in gymnasium.registry


@pytest.fixture
def fake_plugins(tmp_path, monkeypatch):
    """Install two plugin distributions on sys.path: a good one and a broken one."""
    (tmp_path / "acme_envs.py").write_text(
        textwrap.dedent("""
        import gymnasium
        from turngym.core import TextEnv, Transition

        class Echo(TextEnv):
            family = "echo"
            example_actions = ("<action>hello</action>",)
            def generate_task(self, rng, difficulty):
                return {"word": ["red", "green", "blue", "cyan", "pink"][int(rng.integers(5))]}
            def load_task(self, task):
                self.word, self.said = task["word"], ""
            def instructions(self):
                return "Say a word in <action>...</action>."
            def render_text(self):
                return f"you said {self.said!r}"
            def apply(self, command):
                self.said = command
                done = command == self.word
                return Transition(reward=float(done), terminated=done)
            def state_key(self):
                return self.said
            def score(self):
                return float(self.said == self.word)

        def register_envs():
            gymnasium.register(id="Echo-v0", entry_point="acme_envs:Echo", max_episode_steps=5)

        def echo_agent(arg, *, seed):
            from turngym.agents import ScriptedAgent
            return ScriptedAgent(["<action>" + (arg or "hi") + "</action>"])
    """)
    )
    for name, entry_points in {
        "acme_envs": "[turngym.envs]\nacme = acme_envs:register_envs\n"
        "[turngym.agents]\necho = acme_envs:echo_agent\n",
        "broken_plugin": "[turngym.envs]\nbroken = no_such_module_anywhere:register\n",
    }.items():
        info = tmp_path / f"{name}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(entry_points)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    from turngym.agents import agent_registry

    for registry in (env_registry, agent_registry):
        monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry_module, "_WARNED", set())  # warned once per process
    yield
    gymnasium.registry.pop("acme/Echo-v0", None)
    sys.modules.pop("acme_envs", None)


def test_entry_point_plugin_registers_namespaced_env(fake_plugins):
    with pytest.warns(RuntimeWarning, match="broken"):
        env = turngym.make("acme/Echo-v0")
    obs, info = env.reset(seed=0)
    assert info["task_id"].startswith("echo-")
    # every other env still works after the broken plugin warned
    turngym.make("turngym/FrozenLake-v0").reset(seed=0)
    statuses = {s.name: s.ok for s in env_registry.plugin_status}
    assert statuses == {"acme": True, "broken": False}


def test_entry_point_plugin_agent(fake_plugins):
    from turngym.agents import make_agent

    agent = make_agent("echo:blue")
    assert agent.act_batch([turngym.Conversation("", (), "")])[0].text == "<action>blue</action>"


def test_plugins_do_not_load_on_import():
    code = "import turngym, turngym.registry as r; print(r.env_registry._plugins_loaded)"
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
