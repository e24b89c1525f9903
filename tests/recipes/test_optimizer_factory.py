"""The recipes' one optimizer and schedule factory (recipes/common/optimizers.py): every name
it builds reaches every recipe, and it builds each optimizer as the recipes did by hand."""

import dataclasses
import json

import keras
import numpy as np
import pytest

import tf_lamb
from recipes.bert import configs as bert_configs
from recipes.bert import pretraining
from recipes.common import optimizers, study
from recipes.resnet import configs as resnet_configs
from recipes.resnet import train as train_lib

from .bert_runs import history, pretrain

NAMES = tuple(optimizers.OPTIMIZERS)


def _variables():
    with keras.name_scope("encoder"):
        kernel = keras.Variable(np.full((3, 3), 0.5), name="kernel")
        with keras.name_scope("LayerNorm"):
            gamma = keras.Variable(np.ones(3), name="gamma")
        bias = keras.Variable(np.full(3, 0.1), name="bias")
    return [kernel, gamma, bias]


def _decayed(optimizer, variables):
    optimizer.build(variables)
    if isinstance(optimizer, tf_lamb.optimizers.LayerwiseOptimizer):
        return {path for path, rate, _ in optimizer.layer_settings() if rate > 0}
    return {v.path for v in variables if optimizer._use_weight_decay(v)}


@pytest.mark.parametrize("name", NAMES)
def test_every_name_builds_with_exclusions_matched_on_paths(name):
    # Keras' baselines match `variable.name` ("gamma"), so the factory hands them the
    # variables whose path matches; every optimizer then decays exactly the kernel.
    variables = _variables()
    optimizer = optimizers.build_optimizer(
        name, 0.1, weight_decay=0.01, exclude_from_weight_decay=["LayerNorm", "bias"],
        variables=variables, beta_1=0.8, momentum=0.7, trust_coefficient=0.002,
        global_clipnorm=1.0)
    assert _decayed(optimizer, variables) == {"encoder/kernel"}
    assert optimizer.global_clipnorm == 1.0
    for setting, value in (("beta_1", 0.8), ("momentum", 0.7)):
        if hasattr(optimizer, setting):  # given where the constructor takes it
            assert getattr(optimizer, setting) == value


def test_references_are_built_as_the_recipes_built_them():
    variables = _variables()
    adamw = optimizers.build_optimizer("adamw", 0.1, weight_decay=0.01, variables=variables)
    assert isinstance(adamw, keras.optimizers.AdamW)
    assert (adamw.beta_1, adamw.beta_2, adamw.epsilon) == (0.9, 0.999, 1e-6)
    lans = optimizers.build_optimizer("lans", 0.1, exclude_from_weight_decay=["bias"])
    lans.build(variables)
    assert all(adapts for _, _, adapts in lans.layer_settings())  # the LANS authors' rule
    goyal = optimizers.build_optimizer("momentum", 0.1, weight_decay=1e-4)
    goyal.build(variables)
    assert isinstance(goyal, tf_lamb.LARS)
    assert not any(adapts for _, _, adapts in goyal.layer_settings())
    decoupled = optimizers.build_optimizer("momentum", 0.1, weight_decay=1e-4,
                                           weight_decay_mode="decoupled")
    assert isinstance(decoupled, keras.optimizers.SGD) and decoupled.momentum == 0.9
    with pytest.raises(ValueError, match="weight_decay_mode must be 'l2' or 'decoupled'"):
        optimizers.build_optimizer("momentum", 0.1, weight_decay_mode="inside")
    with pytest.raises(ValueError, match=r"--optimizer must be one of lamb, .*'sgd'"):
        optimizers.build_optimizer("sgd", 0.1)


def test_schedules_and_scaling_rules_come_from_tf_lamb():
    assert optimizers.scale_learning_rate("sqrt", 0.01, 256, 4096) == pytest.approx(0.04)
    assert optimizers.scale_learning_rate("linear", 0.1, 256, 8192) == pytest.approx(3.2)
    assert optimizers.scale_learning_rate("none", 0.3, 256, 8192) == 0.3
    with pytest.raises(ValueError, match="scaling must be one of none, sqrt, linear"):
        optimizers.scale_learning_rate("cubic", 0.1, 256, 512)
    goyal = optimizers.build_schedule("goyal", peak_learning_rate=0.8, steps_per_epoch=10,
                                      warmup_epochs=0.25, boundaries_epochs=(1, 2))
    # 2.5 warmup steps round half up to 3 (Python's round would give 2).
    assert goyal.warmup_steps == 3 and float(goyal(3)) == pytest.approx(0.8)
    assert float(goyal(20)) == pytest.approx(0.008)
    legw = optimizers.build_schedule("legw", base_batch_size=256, base_learning_rate=0.01,
                                     base_warmup_epochs=1, batch_size=1024, steps_per_epoch=5,
                                     epochs=10)
    assert (legw.warmup_steps, legw.peak_learning_rate) == (20, pytest.approx(0.02))
    with pytest.raises(ValueError, match="schedule must be one of polynomial"):
        optimizers.build_schedule("cosine")


def test_resnet_goyal_rounds_warmup_halves_up_and_keeps_boundaries_in_the_run():
    config = dataclasses.replace(resnet_configs.CONFIGS["fashion_momentum_2k"],
                                 warmup_epochs=0.5, train_examples=2048 * 5)
    assert config.steps_per_epoch == 5 and config.warmup_steps == 3  # 2.5 -> 3
    assert config.schedule_fn().warmup_steps == config.warmup_steps
    with pytest.raises(ValueError, match=r"--boundaries_epochs: epoch 3.33333 is after the "
                                         r"run's end \(58 steps = 2 epochs\)"):
        dataclasses.replace(resnet_configs.CONFIGS["fashion_momentum_2k"], epochs=2.0)


@pytest.mark.parametrize("name", NAMES)
def test_every_name_is_accepted_by_every_recipe(name):
    # The study (and the LEGW study, which runs it) asks for the rates of an optimizer it has
    # none tuned for, naming the flags; BERT and ResNet take the name as their --optimizer.
    config = study.StudyConfig(optimizers=(name,))
    if name in study.TUNED:
        study.validate(config)
    else:
        with pytest.raises(study.FlagError, match=f"--{name}_learning_rate=: {name} has no"):
            study.validate(config)
        study.validate(dataclasses.replace(
            config, **{f"{name}_learning_rate": 0.01, f"{name}_weight_decay": 1e-4}))
    variables = _variables()
    for config_name, config in bert_configs.CONFIGS.items():
        config = dataclasses.replace(config, optimizer=name)
        assert pretraining.make_optimizer(config, variables) is not None, config_name
    for config_name, config in resnet_configs.CONFIGS.items():
        # Each class keeps its own epsilon (LARS' 0 would stop LAMB and make AdamW divide
        # by 0), the configuration's trust coefficient goes to LARS and LARC.
        optimizer = train_lib.make_optimizer(dataclasses.replace(config, optimizer=name),
                                             variables)
        if name in ("adamw", "lamb", "lans"):
            assert optimizer.epsilon == 1e-6, config_name


@pytest.mark.parametrize("name", [n for n in NAMES if n not in study.TUNED])
def test_an_optimizer_outside_the_references_trains_in_the_study(fashion, name):
    config = study.StudyConfig(optimizers=(name,), batch_sizes=(128,), epochs=1,
                               train_examples=1024, **{f"{name}_learning_rate": 0.01,
                                                       f"{name}_weight_decay": 1e-4})
    study.validate(config)
    row = study.run_one(config, study.select(fashion, 1024), name, 128, progress=False)
    assert row["steps_run"] == 8 and np.isfinite(row["final_train_loss"])
    assert row["test_accuracy"] > 0.3  # chance is 0.1




@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("lamb", "lans", "adamw")])
def test_an_optimizer_outside_the_references_trains_bert(bert_data_dir, tmp_path, name):
    pretrain(bert_data_dir, tmp_path, "--train_steps=3", "--warmup_steps=1",
             f"--optimizer={name}", "--learning_rate=0.01")
    lines = history(tmp_path)
    assert [r["step"] for r in lines] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) for r in lines)
    assert json.loads((tmp_path / "config.json").read_text())["optimizer"] == name


def test_saved_lstm_runs_stay_valid_when_the_factory_grows():
    # The LEGW study reuses saved runs whose settings equal this study's: the rates of
    # optimizers the study has none for (those added to the factory) are not among them.
    from recipes.lstm import main as legw_main

    wanted = legw_main.settings(study.StudyConfig(), "data")
    untuned = [n for n in NAMES if n not in study.TUNED]
    assert untuned and not any(k.startswith(tuple(untuned)) for k in wanted)
    assert wanted["lamb_learning_rate"] == 0.005
    given = legw_main.settings(study.StudyConfig(**{f"{untuned[0]}_learning_rate": 0.1}), "d")
    assert given[f"{untuned[0]}_learning_rate"] == 0.1
