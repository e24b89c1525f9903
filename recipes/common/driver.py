"""What every long-run recipe's command line shares: the run flags, the strategy and precision
they pick (:func:`make_strategy`), the run's set-up (:func:`train`) and the step driver
(:func:`run_steps`: logs, TensorBoard, progress bar, evaluations, checkpoints, resumption
after a kill).

A recipe supplies its configuration, model, optimizer, task and data; :func:`train` does the
rest, the same way for BERT and ResNet, through the backend's driver:
:mod:`recipes.common.tf_driver` (the recipes' step under every ``tf.distribute`` strategy;
Keras 3's ``fit`` does not run under ``MultiWorkerMirroredStrategy``, and a custom loop
controls the global batch) or :mod:`recipes.common.jax_driver` (``keras.distribution``). This
module imports no TensorFlow, so a JAX run from NumPy shards needs none installed. A study's
short runs drive the same step with :func:`recipes.common.loop.train_epochs`.
"""

import contextlib
import dataclasses
import functools
import json
import os
import signal
import sys
import time

import keras
import tqdm

import tf_lamb
from tf_lamb._summaries import EventWriter

from . import runtime
from .report import read_json_lines

PRECISIONS = ("auto", "float32", "mixed_bfloat16")
#: The ``--strategy`` values (:mod:`recipes.common.distribute` on TensorFlow,
#: :mod:`recipes.common.jax_driver` on JAX).
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")


def define_flags(fv, max_per_replica_batch_size=64, shuffle_buffer=10000):
    """Defines the run flags every recipe takes on ``fv`` (an ``absl.flags.FlagValues``), with
    the recipe's defaults for the per-replica batch and the shuffle buffer (examples; with
    ``--resume_data=iterator`` the buffer is saved in every checkpoint)."""
    from absl import flags

    flags.DEFINE_string("output_dir", None, "Checkpoints, summaries and logs.", flag_values=fv)
    flags.DEFINE_enum("strategy", "auto", STRATEGIES,
                      "tf.distribute strategy (see recipes/common/distribute.py). On JAX: "
                      "every device but with one_device; multi_worker joins the hosts through "
                      "jax.distributed (recipes/common/jax_driver.py).", flag_values=fv)
    flags.DEFINE_string("tpu", None, "TPU name or address for TPUClusterResolver ('local' on a "
                        "TPU VM or Colab).", flag_values=fv)
    flags.DEFINE_enum("precision", "auto", PRECISIONS, "Keras dtype policy: 'auto' is "
                      "mixed_bfloat16 on a TPU (the references' setting) and float32 elsewhere; "
                      "variables and the optimizer stay float32.", flag_values=fv)
    flags.DEFINE_integer("max_per_replica_batch_size", max_per_replica_batch_size,
                         "The most examples one replica processes per pass; larger global "
                         "batches accumulate gradients.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("checkpoint_every", 100, "Optimizer steps between checkpoints (and one "
                         "at exit).", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("log_every", 10, "Steps between summaries and history lines.",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("eval_every", 100, "Steps between held-out evaluations (0: only at "
                         "the end).", lower_bound=0, flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of initialization, dropout and data order.",
                         flag_values=fv)
    flags.DEFINE_integer("shuffle_buffer", shuffle_buffer, "Training examples in the shuffle "
                         "buffer (0: the files' interleaved order). NumPy shards are shuffled "
                         "whole; for them only 0 or not counts.",
                         lower_bound=0, flag_values=fv)
    flags.DEFINE_enum("resume_data", "iterator", ("iterator", "skip"), "How a resumed run "
                      "finds its data position: 'iterator' saves the input iterator, shuffle "
                      "buffer included, in every checkpoint; 'skip' re-reads the data from the "
                      "start and skips what the finished steps consumed (smaller checkpoints, "
                      "slower resumption). Always 'skip' on a TPU.", flag_values=fv)
    flags.DEFINE_boolean("progress", True, "Show a progress bar.", flag_values=fv)
    flags.DEFINE_boolean("jit_compile", False, "XLA-compile each replica's forward and backward "
                         "pass (tf_lamb's optimizers compile their own update either way; "
                         "Keras' do not).", flag_values=fv)
    flags.DEFINE_integer("model_parallel", 1, "JAX backend: devices along the mesh's model "
                         "axis, which split the large kernels (a recipe's layout, e.g. BERT's); "
                         "the others form the batch axis (1: data parallel only).",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("cpu_replicas", 0, "Split the CPU into this many logical devices (try "
                         "--strategy=mirrored on one machine; 0: leave it whole).",
                         lower_bound=0, flag_values=fv)
    flags.DEFINE_integer("kill_at_step", 0, "Testing: SIGKILL this process right after this "
                         "step, as a preempted host would be (0: never).", flag_values=fv)


def define_config_flags(fv, configs, default, skip=(), eval_help="Globs of held-out TFRecords "
                        "(optional)."):
    """Defines ``--config`` (a name in ``configs``), ``--train_files``, ``--eval_files`` and
    one override flag per field of the configurations' dataclass (int, float or str; the
    fields in ``skip`` are left to the recipe).

    Args:
        fv: an ``absl.flags.FlagValues``.
        configs: dict of named dataclass instances.
        default: the default ``--config``.
        skip: field names not defined here.
        eval_help: the help of ``--eval_files``.
    """
    from absl import flags

    flags.DEFINE_enum("config", default, sorted(configs),
                      "Named configuration; flags below override its fields.", flag_values=fv)
    flags.DEFINE_string("train_files", None, "Comma-separated globs of training TFRecords "
                        "(BERT on JAX: or NumPy shards, *.npy).", flag_values=fv)
    flags.DEFINE_string("eval_files", None, eval_help, flag_values=fv)
    kinds = {int: flags.DEFINE_integer, float: flags.DEFINE_float, str: flags.DEFINE_string}
    for field in dataclasses.fields(next(iter(configs.values()))):
        if field.name in skip:
            continue
        kind = field.type if isinstance(field.type, type) else type(field.default)
        kinds[kind](field.name, None, f"Overrides the configuration's {field.name}.",
                    flag_values=fv)


def config_overrides(fv, config_class):
    """``{field: value}`` of the configuration flags given on the command line."""
    return {f.name: fv[f.name].value for f in dataclasses.fields(config_class)
            if f.name in fv and fv[f.name].value is not None}


def make_strategy(fv, tf_data=True):
    """The strategy and Keras dtype policy the flags ask for; returns ``(strategy, policy)``.

    Call it before building the model: the policy is global to the process. On TensorFlow:
    :func:`recipes.common.tf_driver.set_up`. On the JAX backend there is no ``tf.distribute``
    strategy: it returns ``(None, policy)`` (:func:`recipes.common.jax_driver.set_up`), and
    :func:`train` runs there over ``keras.distribution``.

    Args:
        fv: flags from :func:`define_flags`.
        tf_data: bool, JAX backend: the input is read with tf.data, so TensorFlow must be
            installed (False: NumPy shards, which need none).
    """
    if keras.backend.backend() == "jax":
        from . import jax_driver

        return None, jax_driver.set_up(fv, tf_data)
    from . import tf_driver

    return tf_driver.set_up(fv)


class RunLog:
    """``history.jsonl`` (one JSON line per record) and TensorBoard scalars under ``train/``
    and ``eval/`` (``tf.summary`` on TensorFlow, tensorboardX on JAX); written by the chief
    only (``enabled``).

    A run resumed from step ``step`` first drops the history lines of later steps (a killed
    run logged them after its last checkpoint; they are trained again) and a last line cut
    short by the kill, so every step appears once.

    Raises:
        tf_lamb.callbacks.SummariesNotAvailableError: ``enabled`` and nothing that writes
            TensorBoard summaries is installed; checked before any file is opened.
    """

    def __init__(self, output_dir, enabled, step=0):
        self.enabled = enabled
        if enabled:
            runtime.check_writers(summaries=True)
            path = os.path.join(output_dir, "history.jsonl")
            _drop_history_after(path, step)
            self.history = open(path, "a")
            self.writers = {k: EventWriter(os.path.join(output_dir, k))
                            for k in ("train", "eval")}

    def write(self, step, values, writer="train"):
        if not self.enabled:
            return
        self.history.write(json.dumps({"step": step, **values}) + "\n")
        self.history.flush()
        self.writers[writer].write(step, scalars=values)

    def close(self):
        if self.enabled:
            self.history.close()
            for w in self.writers.values():
                w.close()


def _drop_history_after(path, step):
    """Rewrites ``path`` without the records of steps after ``step`` and without lines that
    are not JSON; atomically (a temporary file renamed over it), and only if one is dropped."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        text = f.read()
    kept = [r for r in read_json_lines(path) if r.get("step", 0) <= step]
    if len(kept) == text.count("\n") and text.endswith("\n"):
        return
    temporary = path + ".tmp"
    with open(temporary, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in kept)
    os.replace(temporary, path)


def write_run_config(fv, config, plan, strategy, precision, run_config=None, **more):
    """Writes the run's ``config.json`` to ``--output_dir``: the configuration's name and
    fields, ``run_config`` (a JSON-friendly dict of the recipe's derived values), the batch
    plan, the strategy's name, the precision, and ``more``."""
    record = {"config_name": fv.config, **dataclasses.asdict(config), **(run_config or {}),
              "batch_plan": dataclasses.asdict(plan), "strategy": strategy,
              "precision": precision, "jit_compile": fv.jit_compile, **more}
    with runtime.open_file(os.path.join(fv.output_dir, "config.json"), "w") as f:
        json.dump(record, f, indent=2)


def command_line(define_flags, run, errors=(ValueError, FileNotFoundError)):
    """A console-script entry point: defines the flags, parses ``sys.argv``, calls ``run()``,
    and turns any of ``errors``, a missing writer (:func:`runtime.check_writers`) or a
    corrupt TFRecord (TensorFlow's ``DataLossError``, where TensorFlow was imported) into
    ``error: <message>`` and exit status 1."""
    from absl import app

    def main(argv):
        del argv
        try:
            run()
        except Exception as error:
            tf = sys.modules.get("tensorflow")
            data_loss = tf is not None and isinstance(error, tf.errors.DataLossError)
            if not (data_loss or isinstance(error, tuple(errors) + runtime.WRITER_ERRORS)):
                raise
            sys.exit(f"error: {error}")

    define_flags()
    runtime.list_flags_in_help()
    app.run(main)


def check_run_flags(fv, has_training_data, training_flags="--train_files"):
    """Checks, before anything is read or written, that the run has an ``--output_dir`` and
    training data, and that TensorBoard (its summaries) is installed.

    Args:
        fv: flags from :func:`define_flags`.
        has_training_data: whether the flags name training data.
        training_flags: the flags that do, for the error.

    Raises:
        ValueError: ``--output_dir`` or the training data is missing (the message names the
            flag: ``training_flags``).
        tf_lamb.callbacks.SummariesNotAvailableError: nothing that writes TensorBoard
            summaries is installed.
    """
    if not fv.output_dir:
        raise ValueError("--output_dir is required.")
    if not has_training_data:
        raise ValueError(f"{training_flags} is required.")
    runtime.check_writers(summaries=True)


def train(fv, strategy, policy, *, config, summary, build_model, build_optimizer, task,
          train_dataset, train_steps, summarize, eval_dataset=None, run_config=None,
          explain_data_error=None, on_fresh_start=None, layout_map=None, log=print):
    """Sets a long run up and trains it: the batch plan, the model and optimizer in the
    strategy's scope, the data feed, ``config.json``, checkpoints (resuming from the newest),
    held-out evaluation, then :func:`run_steps`.

    Args:
        fv: flags from :func:`define_flags` and :func:`define_config_flags`.
        strategy, policy: from :func:`make_strategy` (called by the recipe first, before
            TensorFlow reads anything).
        config: the run's configuration, a dataclass with ``global_batch_size`` and
            ``optimizer`` (a name of :data:`recipes.common.optimizers.OPTIMIZERS`).
        summary: the start-up line describing the run.
        build_model: ``f() -> keras.Model``, called in the strategy's scope after seeding.
        build_optimizer: ``f(variables) -> optimizer``, likewise.
        task: ``task(model, batch, training) -> (loss_sum, metrics)``
            (:class:`~recipes.common.training.StepRunner`).
        train_dataset: ``make_dataset(batch_size, num_shards, shard_index, skip)`` as
            :class:`~recipes.common.training.DataFeed` takes it.
        train_steps: int, the optimizer step to stop at.
        summarize: as :func:`run_steps` takes it.
        eval_dataset: optional ``make_dataset(batch_size, num_shards, shard_index)`` of the
            held-out data (:class:`recipes.common.tf_driver.Evaluator`).
        run_config: dict of values ``config.json`` records beside the configuration's fields.
        explain_data_error: as :func:`run_steps` takes it.
        on_fresh_start: optional ``f(model)`` called when no checkpoint was restored (e.g. to
            load another run's weights).
        layout_map: optional ``f(device_mesh) -> keras.distribution.LayoutMap``, the model's
            layout under ``--model_parallel`` (JAX backend).
        log: print-like, for the start-up lines.

    Returns:
        What :func:`run_steps` returns.

    Raises:
        ValueError: the global batch does not split over the replicas
            (:func:`recipes.common.batching.plan_batch`), an optimizer setting is out of its
            range, or :func:`run_steps` names a bad input file.
    """
    if strategy is None:
        from . import jax_driver as backend_driver

        run = functools.partial(backend_driver.train, fv, policy)
    else:
        from . import tf_driver as backend_driver

        run = functools.partial(backend_driver.train, fv, strategy, policy)
    return run(config=config, summary=summary, build_model=build_model,
               build_optimizer=build_optimizer, task=task, train_dataset=train_dataset,
               train_steps=train_steps, summarize=summarize, eval_dataset=eval_dataset,
               run_config=run_config, explain_data_error=explain_data_error,
               on_fresh_start=on_fresh_start, layout_map=layout_map, log=log)


def run_steps(fv, *, runner, feed, checkpointer, train_steps, summarize, evaluate=None,
              explain_data_error=None, trust_ratios=False, log=print):
    """Trains from the optimizer's current step to ``train_steps``, with logs, held-out
    evaluations and checkpoints; saves a checkpoint at exit, also after an error or Ctrl-C on
    one host (on several, every host must take part in a save, and the others may be waiting
    in a step: the run resumes from the last periodic checkpoint).

    Args:
        fv: flags from :func:`define_flags` (``output_dir``, ``log_every``, ``eval_every``,
            ``checkpoint_every``, ``kill_at_step``, ``progress``).
        runner: a :class:`~recipes.common.training.StepRunner`.
        feed: its :class:`~recipes.common.training.DataFeed`.
        checkpointer: a :class:`~recipes.common.checkpointing.Checkpointer`.
        train_steps: int, the optimizer step to stop at.
        summarize: ``f(sums) -> dict``: the metric sums of the steps since the last log (or of
            one evaluation) to the values logged (e.g. accuracy); the first two are shown on
            the progress bar.
        evaluate: optional ``f() -> dict`` of held-out metric sums (a
            :class:`recipes.common.tf_driver.Evaluator`).
        explain_data_error: optional ``f(error) -> str or None``: a message naming the bad
            file behind an error met while training or evaluating (e.g. TensorFlow's
            ``DataLossError``; None: not an input problem, the error is raised as it is).
        trust_ratios: bool, record the layer-wise optimizer's trust ratios to TensorBoard
            (``tf_lamb.callbacks.TrustRatioMonitor``) at each log.
        log: print-like, for the evaluation lines.

    Returns:
        A dict: ``step`` reached, the last ``train`` and ``eval`` values logged.

    Raises:
        ValueError: ``explain_data_error`` named a bad input file.
    """
    optimizer = runner.optimizer
    global_batch = runner.plan.global_batch_size
    step = int(optimizer.iterations.numpy())
    if step and not feed.save_iterator:
        feed.skip_passes(step * runner.plan.accumulation_steps)
        log(f"data position: skipped the {step * runner.plan.accumulation_steps} passes of the "
            f"{step} steps done")
    logger = RunLog(fv.output_dir, checkpointer.is_chief, step)
    monitor = None
    if trust_ratios and checkpointer.is_chief:
        monitor = tf_lamb.callbacks.TrustRatioMonitor(os.path.join(fv.output_dir, "train"))
    last_train, last_eval, window = {}, {}, {}
    started, examples_since = time.perf_counter(), 0
    bar = tqdm.tqdm(total=train_steps, initial=step, unit="step", dynamic_ncols=True,
                    disable=not (fv.progress and checkpointer.is_chief))
    failed = False
    try:
        while step < train_steps:
            with _input_errors(explain_data_error):
                sums = runner.train_step(feed)
            step += 1
            if step == fv.kill_at_step:
                os.kill(os.getpid(), signal.SIGKILL)
            for k, v in sums.items():
                window[k] = window.get(k, 0.0) + float(v)
            examples_since += global_batch
            bar.update(1)
            if step % fv.log_every == 0 or step == train_steps:
                last_train = dict(
                    summarize(window),
                    learning_rate=float(optimizer.learning_rate),
                    examples_per_second=examples_since / (time.perf_counter() - started),
                )
                logger.write(step, last_train)
                if monitor:
                    monitor.record(optimizer, step)
                shown = list(last_train.items())[:2]
                bar.set_postfix({k: f"{v:.3f}" for k, v in shown},
                                ex_s=f"{last_train['examples_per_second']:.0f}")
                window, started, examples_since = {}, time.perf_counter(), 0
            at_eval = (fv.eval_every and step % fv.eval_every == 0) or step == train_steps
            if evaluate and at_eval:
                with _input_errors(explain_data_error):
                    sums = evaluate()
                last_eval = {f"eval_{k}": v for k, v in summarize(sums).items()}
                logger.write(step, last_eval, "eval")
                bar.write(f"step {step}: " + ", ".join(
                    f"{k} {v:.4f}" for k, v in list(last_eval.items())[:2]))
            if step % fv.checkpoint_every == 0 and step < train_steps:
                checkpointer.save(step)
    except BaseException:
        failed = True
        raise
    finally:
        bar.close()
        try:
            if (step > 0 and not checkpointer.saved(step)
                    and not (failed and checkpointer.hosts > 1)):
                checkpointer.save(step)
        finally:
            logger.close()
            if monitor:
                monitor.on_train_end()
    return {"step": step, "train": last_train, "eval": last_eval}


@contextlib.contextmanager
def _input_errors(explain):
    """Turns an error that ``explain`` traces to an input file (e.g. TensorFlow's
    ``DataLossError`` from a corrupt record) into a ``ValueError`` naming it."""
    try:
        yield
    except Exception as error:
        message = explain(error) if explain else None
        if message is None:
            raise
        raise ValueError(message) from error
