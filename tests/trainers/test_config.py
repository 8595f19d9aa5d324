from __future__ import annotations

import argparse
import json

import pytest

from turngym.trainers.config import TrainConfig, add_config_arguments, config_from_args, field_docs


def parse(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_config_arguments(parser)
    return config_from_args(parser.parse_args(argv))


def test_every_field_has_help_text():
    docs = field_docs(TrainConfig)
    missing = [f for f in TrainConfig.__dataclass_fields__ if not docs.get(f)]
    assert missing == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"iterations": 0}, "iterations must be >= 1"),
        ({"minibatch_size": 10, "grad_accumulation": 3}, "multiple of grad_accumulation"),
        ({"aggregation": "token-sum"}, "aggregation must be one of"),
        ({"top_p": 0}, "top_p"),
        ({"dual_clip": 1.0}, "dual_clip"),
        ({"sequence_mode": "chunk"}, "sequence_mode"),
    ],
)
def test_bad_values_fail_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_files_and_flags(tmp_path):
    yaml_path = tmp_path / "run.yaml"
    yaml_path.write_text("estimator: rloo\ngroup_size: 4\nstop: ['</a>']\n")
    config = parse(["--config", str(yaml_path), "--group-size", "6", "--history", "none"])
    assert (config.estimator, config.group_size, config.stop, config.history) == (
        "rloo",
        6,
        ("</a>",),
        None,
    )
    json_path = tmp_path / "run.json"
    json_path.write_text(json.dumps(config.to_dict()))
    assert TrainConfig.from_file(json_path) == config
    json_path.write_text(json.dumps({"learning_rat": 0.1}))
    with pytest.raises(ValueError, match="did you mean 'learning_rate'"):
        TrainConfig.from_file(json_path)


def test_cli_train_rejects_bad_config_before_work(tmp_path, capsys):
    from turngym.cli import main

    assert main(["train", "--iterations", "0", "--out-dir", str(tmp_path / "run")]) == 2
    assert "iterations must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
