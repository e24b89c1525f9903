"""get_config / from_config / keras.saving round trips, alone and inside an optimizer."""

import inspect
import json

import keras
import numpy as np
from keras import ops

from tf_lamb import schedules

from . import cases

CLASSES = [
    schedules.PolynomialDecayWithWarmup,
    schedules.LEGW,
    schedules.WarmupConstantDecay,
    schedules.GoyalStepDecay,
]


def values(schedule, steps):
    return ops.convert_to_numpy(schedule(np.asarray(steps, dtype="int64")))


def assert_same_schedule(restored, original):
    assert type(restored) is type(original)
    assert restored.get_config() == original.get_config()
    steps = cases.probe_steps(original)
    # Same arguments, same ops: the values are bit-identical.
    np.testing.assert_array_equal(values(restored, steps), values(original, steps))


def test_config_holds_exactly_the_constructor_arguments():
    for schedule in cases.every_kind():
        arguments = set(inspect.signature(type(schedule).__init__).parameters) - {"self"}
        assert set(schedule.get_config()) == arguments


def test_registered_under_tf_lamb_package():
    for cls in CLASSES:
        assert keras.saving.get_registered_name(cls) == f"tf_lamb>{cls.__name__}"


def test_from_config_round_trip_through_json():
    for schedule in cases.every_kind():
        config = json.loads(json.dumps(schedule.get_config()))
        assert_same_schedule(type(schedule).from_config(config), schedule)


def test_serialize_keras_object_round_trip_through_json():
    for schedule in cases.every_kind():
        serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(schedule)))
        assert_same_schedule(keras.saving.deserialize_keras_object(serialized), schedule)


def test_from_base_and_from_fractions_configs_hold_computed_steps():
    legw = schedules.LEGW.from_base(256, 0.01, 0.1, 4096, 15, 10)
    assert legw.get_config()["warmup_steps"] == 24
    assert legw.get_config()["total_steps"] == 150
    lans = schedules.WarmupConstantDecay.from_fractions(1e-3, 1000)
    assert (lans.get_config()["warmup_steps"], lans.get_config()["constant_steps"]) == (
        50,
        250,
    )


def test_sgd_config_round_trip_keeps_the_schedule():
    for schedule in cases.every_kind():
        optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)
        config = optimizer.get_config()
        restored = keras.optimizers.SGD.from_config(json.loads(json.dumps(config)))
        assert restored.get_config() == config
        for opt in (optimizer, restored):
            opt.iterations.assign(schedule.warmup_steps + 3)
        np.testing.assert_array_equal(
            ops.convert_to_numpy(restored.learning_rate),
            ops.convert_to_numpy(optimizer.learning_rate),
        )


def test_saved_model_file_restores_the_schedule(tmp_path):
    schedule = schedules.LEGW(0.04, 24, 150, "cosine", end_learning_rate=1e-3)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule), loss="mse")
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert (
        restored.optimizer.get_config()["learning_rate"]
        == model.optimizer.get_config()["learning_rate"]
    )
