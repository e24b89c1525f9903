"""Keras 3's sparse-gradient optimizer tests, run against tf_lamb's optimizers.

Peer file: keras-team/keras, ``keras/src/optimizers/optimizer_sparse_test.py``, read at commit
3422977a5e38fb2f7709aaa9a08e47f0c43d0f60 (identical at tag v3.15.1, the installed Keras).

Mapping: Keras' table of optimizer cases becomes tf_lamb's: LAMB, LARS and LANS with their
defaults, LAMB in TensorFlow's plain-graph step (``jit_compile=False``), and LAMB inside
``LossScaleOptimizer`` (Keras' ``loss_scale_optimizer_sgd`` case). A layer's trust ratio needs
the norm of its whole direction, so tf_lamb densifies a sparse gradient
(``tf_lamb.optimizers.clipping.dense_gradient``: "the moments are updated densely, as tfa's
LAMB did"): every case expects neither sparse model-
variable updates nor sparse slot updates, as Keras expects of Adam. The two tests are
Keras': (1) with the optimizer's and the variable's assign methods mocked, the optimizer
never calls ``assign`` on a non-scalar variable directly and makes no sparse update;
(2) a sparse gradient gives the same weights as the same gradient made dense, over five
steps (``stateless_apply`` on JAX). Sparse gradients are ``tf.IndexedSlices`` on TensorFlow
and ``jax.experimental.sparse.BCOO`` on JAX; PyTorch has no sparse gradients in Keras
(skipped, as in Keras). Keras builds its ``IndexedSlices`` with Python tuples for
``indices`` and ``dense_shape``; that is kept.
"""

from unittest import mock

import keras
import numpy as np
import pytest
from keras import ops

import tf_lamb

BACKEND = keras.backend.backend()

pytestmark = pytest.mark.skipif(
    BACKEND not in ("tensorflow", "jax"), reason="Backend does not support sparse tensors."
)

# (id, optimizer factory, expect_model_sparse_variable_updates,
#  expect_optimizer_sparse_variable_updates)
TEST_CASES = [
    pytest.param(tf_lamb.LAMB, False, False, id="lamb"),
    pytest.param(tf_lamb.LARS, False, False, id="lars"),
    pytest.param(tf_lamb.LANS, False, False, id="lans"),
    pytest.param(
        lambda: tf_lamb.LAMB(jit_compile=False),
        False,
        False,
        id="lamb_graph",
        marks=pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's plain graph step"),
    ),
    pytest.param(
        lambda: keras.optimizers.LossScaleOptimizer(tf_lamb.LAMB(learning_rate=0.5)),
        False,
        False,
        id="loss_scale_optimizer_lamb",
    ),
]


@pytest.mark.parametrize(
    "optimizer_class, expect_model_sparse_variable_updates, "
    "expect_optimizer_sparse_variable_updates",
    TEST_CASES,
)
def test_sparse_gradients(
    optimizer_class,
    expect_model_sparse_variable_updates,
    expect_optimizer_sparse_variable_updates,
):
    # Checks that the optimizer updates variables only through its own
    # self.assign/assign_add/assign_sub (never the variable's methods, which would densify
    # a sparse update), that the ops it uses accept sparse gradients, and whether a sparse
    # gradient gives a sparse update of the model variable or of the optimizer's slots.
    model_variable = keras.Variable(initializer="ones", shape=(5, 10))
    optimizer = optimizer_class()

    # Mocking "tensorflow.Variable" would not work: it is replaced by the resource variable
    # class.
    if BACKEND == "tensorflow":
        import tensorflow as tf

        grad = tf.IndexedSlices(0.5 * ops.ones((3, 10)), (0, 2, 4), (5, 10))
        sparse_class = tf.IndexedSlices
        variable_class = model_variable._value.__class__
    else:
        import jax.experimental.sparse as jax_sparse

        grad = jax_sparse.BCOO((0.5 * ops.ones((3, 10)), ((0,), (2,), (4,))), shape=(5, 10))
        sparse_class = jax_sparse.JAXSparse
        variable_class = model_variable.__class__

    optimizer_to_patch = (
        optimizer.inner_optimizer
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        else optimizer
    )

    model_sparse_variable_updates = False
    optimizer_sparse_variable_updates = False

    def mock_optimizer_assign(variable, value):
        nonlocal model_sparse_variable_updates
        nonlocal optimizer_sparse_variable_updates
        if isinstance(variable, keras.Variable):
            variable = variable._value
        if isinstance(value, sparse_class):
            if variable is model_variable._value:
                model_sparse_variable_updates = True
            elif any(variable is v._value for v in optimizer.variables):
                optimizer_sparse_variable_updates = True

    def mock_variable_assign(variable, value):
        # Scalar variables (the iteration counter) are exempt.
        if len(variable.shape):
            pytest.fail(
                "Optimizer is calling `assign`, `assign_add` or `assign_sub` directly on a "
                "variable. Use `self.assign/assign_add/assign_sub(variable, value)` instead "
                "to support sparse updates."
            )

    # `_apply_weight_decay` is patched out (Keras' own decay; tf_lamb never uses it); the
    # optimizer's assign methods detect sparse updates; the variable class's assign methods
    # detect direct calls.
    with (
        mock.patch.object(optimizer_to_patch, "_apply_weight_decay", autospec=True),
        mock.patch.object(optimizer_to_patch, "assign", autospec=True) as optimizer_assign,
        mock.patch.object(
            optimizer_to_patch, "assign_add", autospec=True
        ) as optimizer_assign_add,
        mock.patch.object(
            optimizer_to_patch, "assign_sub", autospec=True
        ) as optimizer_assign_sub,
        mock.patch.object(variable_class, "assign", autospec=True) as variable_assign,
        mock.patch.object(variable_class, "assign_add", autospec=True) as variable_assign_add,
        mock.patch.object(variable_class, "assign_sub", autospec=True) as variable_assign_sub,
    ):
        optimizer_assign.side_effect = mock_optimizer_assign
        optimizer_assign_add.side_effect = mock_optimizer_assign
        optimizer_assign_sub.side_effect = mock_optimizer_assign
        variable_assign.side_effect = mock_variable_assign
        variable_assign_add.side_effect = mock_variable_assign
        variable_assign_sub.side_effect = mock_variable_assign

        optimizer.apply([grad], [model_variable])

    assert model_sparse_variable_updates == expect_model_sparse_variable_updates
    assert optimizer_sparse_variable_updates == expect_optimizer_sparse_variable_updates


@pytest.mark.parametrize(
    "optimizer_class, expect_model_sparse_variable_updates, "
    "expect_optimizer_sparse_variable_updates",
    TEST_CASES,
)
def test_sparse_correctness(
    optimizer_class,
    expect_model_sparse_variable_updates,
    expect_optimizer_sparse_variable_updates,
):
    # A sparse gradient gives the same numbers as the same gradient made dense.
    optimizer_sparse = optimizer_class()
    optimizer_dense = optimizer_class()
    var_sparse = keras.Variable(initializer="ones", shape=(5, 3, 2))
    var_dense = keras.Variable(initializer="ones", shape=(5, 3, 2))
    stateless = BACKEND == "jax"
    if stateless:
        optimizer_sparse.build([var_sparse])
        optimizer_dense.build([var_dense])

    optimizer_sparse_vars = optimizer_sparse.variables
    optimizer_dense_vars = optimizer_dense.variables
    var_sparse_values = [var_sparse.value]
    var_dense_values = [var_dense.value]

    for i in range(5):
        if BACKEND == "tensorflow":
            import tensorflow as tf

            grad_sparse = tf.IndexedSlices(
                values=ops.ones((3, 3, 2)) * (10.0 - i),
                indices=(0, 2, 4),
                dense_shape=(5, 3, 2),
            )
        else:
            import jax.experimental.sparse as jax_sparse

            grad_sparse = jax_sparse.BCOO(
                (ops.ones((3, 3, 2)) * (10.0 - i), ((0,), (2,), (4,))), shape=(5, 3, 2)
            )

        grad_dense = ops.convert_to_tensor(grad_sparse, sparse=False)
        if stateless:
            var_sparse_values, optimizer_sparse_vars = optimizer_sparse.stateless_apply(
                optimizer_sparse_vars, [grad_sparse], var_sparse_values
            )
            var_dense_values, optimizer_dense_vars = optimizer_dense.stateless_apply(
                optimizer_dense_vars, [grad_dense], var_dense_values
            )
            _assert_all_close(var_sparse_values[0], var_dense_values[0])
        else:
            optimizer_sparse.apply([grad_sparse], [var_sparse])
            optimizer_dense.apply([grad_dense], [var_dense])
            _assert_all_close(var_sparse.value, var_dense.value)


def _assert_all_close(actual, expected):
    """Keras ``TestCase.assertAllClose`` with its default tolerances."""
    np.testing.assert_allclose(
        ops.convert_to_numpy(actual), ops.convert_to_numpy(expected), rtol=1e-6, atol=1e-6
    )
