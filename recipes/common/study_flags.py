"""The flags of a batch-size study (:mod:`recipes.common.study`), shared by the programs that
run one (the batch-scaling study, the LEGW study): one flag per :class:`study.StudyConfig`
field, with its default and where that default comes from."""

import dataclasses

from absl import flags

from . import fashion_mnist, models, study

_DEFAULTS = study.StudyConfig()
TUNING = "recipes/batch_scaling/TUNING.md"
_TUNED = f"Tuned once at batch 256 ({TUNING})."
UNTUNED = "Not tuned for this study: give it when --optimizers lists this optimizer."
#: The help of each reference's learning-rate and weight-decay flags: where the value comes from.
RATE_HELP = {
    "lamb": (_TUNED, "Inside the trust ratio. 0.01: LAMB paper / NVIDIA BERT. Not tuned."),
    "lars": ("Classic LARS, trust coefficient 0.001. " + _TUNED,
             "2e-4: MLPerf v0.7 ResNet-50. Not tuned."),
    "adamw": (_TUNED, "Decoupled. 0.01: the same rate as LAMB, so the two differ by the trust "
              "ratio and where decay enters. Not tuned."),
    "momentum": ("Momentum 0.9. " + _TUNED, "Decoupled. 1e-4: Goyal et al. 2017. Not tuned."),
}


def define_flags(flag_values=flags.FLAGS):
    """Defines the study's flags on ``flag_values`` (tests pass a fresh ``flags.FlagValues()``),
    once: a program imported both as ``recipes.*`` and ``tf_lamb_recipes.*`` defines them once."""
    if "batch_sizes" in flag_values:
        return
    d = _DEFAULTS
    fv = flag_values
    flags.DEFINE_list(
        "optimizers", list(d.optimizers),
        f"Optimizers to compare, any of {','.join(study.OPTIMIZERS)}.", flag_values=fv)
    flags.DEFINE_list(
        "batch_sizes", [str(b) for b in d.batch_sizes],
        "Global batch sizes (examples per optimizer step). Default: 1x, 4x, 16x and 64x the base "
        "batch, the ratios of the LAMB paper's claims (16x) and LEGW's (64x).", flag_values=fv)
    flags.DEFINE_integer(
        "epochs", d.epochs,
        "Epochs for every batch size (the same budget in examples, as in the LAMB paper). 30 "
        f"runs the default sweep in 6-8 minutes on 2 CPU cores (measured, {TUNING}), "
        "leaving room under a 15-minute budget on a busy machine, and holds LEGW's 64x warmup "
        "(8 epochs) with 22 epochs to decay.", flag_values=fv)
    flags.DEFINE_integer(
        "base_batch_size", d.base_batch_size,
        "The batch at which the learning rates were tuned; others are scaled from it. 256: the "
        "Goyal et al. 2017 reference batch and a common MNIST-scale batch.", flag_values=fv)
    for name in study.OPTIMIZERS:
        rate, decay = RATE_HELP.get(name, (UNTUNED, UNTUNED))
        flags.DEFINE_float(f"{name}_learning_rate", d.learning_rate(name),
                           f"{name} learning rate at --base_batch_size. {rate}", flag_values=fv)
        flags.DEFINE_float(f"{name}_weight_decay", d.weight_decay(name),
                           f"{name} weight decay; biases excluded. {decay}", flag_values=fv)
    flags.DEFINE_enum(
        "scaling", d.scaling, study.SCALING_RULES,
        "How the peak learning rate grows with batch ratio k, for every optimizer: sqrt (x "
        "sqrt(k), LAMB paper and LEGW) or linear (x k, Goyal et al. 2017).", flag_values=fv)
    flags.DEFINE_enum(
        "warmup", d.warmup, study.WARMUPS,
        "legw: warmup epochs x k, i.e. the base batch's warmup steps at every batch (LEGW, You "
        "et al. 2019); fixed: --base_warmup_epochs epochs at every batch (fewer steps as the "
        "batch grows); none: no warmup.", flag_values=fv)
    flags.DEFINE_float(
        "base_warmup_epochs", d.base_warmup_epochs,
        "Warmup epochs at --base_batch_size. 0.125 (29 steps at batch 256): LEGW multiplies it "
        "by the batch ratio, so at 64x it is 8 epochs, about a quarter of the default 30. "
        "Chosen so the 64x warmup fits with room to decay, not tuned.", flag_values=fv)
    flags.DEFINE_float(
        "decay_power", d.decay_power,
        "Power of the polynomial decay to 0 after warmup. 1: LAMB paper BERT.", flag_values=fv)
    flags.DEFINE_bool(
        "exclude_biases_from_adaptation", d.exclude_biases_from_adaptation,
        "LAMB and LARS: biases skip the trust ratio as well as weight decay (the authors' BERT "
        "code, MLPerf LARS), taking the plain Adam / momentum step at the full learning rate. "
        "--noexclude_biases_from_adaptation gives them a trust ratio like every other layer "
        "(the papers' Algorithms 1-2, NVLAMB). Default: the reference codes' convention; "
        f"{TUNING} compares both.",
        flag_values=fv)
    flags.DEFINE_enum(
        "model", d.model, models.MODELS,
        "mlp: 784-512-256-10 (the default, fast on CPU); cnn: a small LeNet-like net (LAMB paper "
        "Table 7 uses LeNet on MNIST), 5-10x slower on CPU; lstm: rows as 28 time steps into an "
        "LSTM of 128 units (the LEGW paper's MNIST-LSTM). The default learning rates were "
        "tuned for the mlp.", flag_values=fv)
    flags.DEFINE_string(
        "data_dir", d.data_dir,
        "Folder with the four Fashion-MNIST IDX files (.gz or not). Empty: "
        f"{fashion_mnist.DEBIAN_DIR} (apt-get install dataset-fashion-mnist), else "
        "keras.datasets.fashion_mnist (downloads).", flag_values=fv)
    flags.DEFINE_string(
        "output_dir", d.output_dir, "Where the CSV, PNG and JSON files go.", flag_values=fv)
    flags.DEFINE_integer(
        "seed", d.seed, "Seed of the initial weights and the data order (the same for every run).",
        flag_values=fv)
    flags.DEFINE_integer(
        "train_examples", d.train_examples,
        "Use only the first N training examples (0: all 60000). For quick checks.",
        flag_values=fv)
    flags.DEFINE_integer(
        "validation_examples", d.validation_examples,
        "Hold out the LAST N training examples and report accuracy on them instead of the test "
        f"set (0: the 10k test set). The base learning rates were tuned with 10000 ({TUNING}).",
        flag_values=fv)
    flags.DEFINE_bool(
        "eval_every_epoch", d.eval_every_epoch,
        "Also measure test accuracy after every epoch (shown on the progress bar, saved in "
        "results.json).", flag_values=fv)
    flags.DEFINE_bool(
        "jit_compile", d.jit_compile,
        "XLA-compile each step's forward and backward pass (tf_lamb's optimizers compile "
        "their own update; Keras' do not). Off: on 2 CPU cores it was no faster for the MLP "
        f"at large batches and slower to compile (measured on the whole step, {TUNING}).",
        flag_values=fv)


def config_from_flags(flag_values=flags.FLAGS):
    """A :class:`study.StudyConfig` from parsed flags.

    Raises:
        study.FlagError: a batch size is not an integer.
    """
    batch_sizes = []
    for text in flag_values.batch_sizes:
        try:
            batch_sizes.append(int(text))
        except ValueError:
            raise study.FlagError(
                f"--batch_sizes={','.join(flag_values.batch_sizes)}: {text!r} is not an integer."
            ) from None
    values = {
        field.name: getattr(flag_values, field.name)
        for field in dataclasses.fields(study.StudyConfig)
    }
    values["optimizers"] = tuple(o.strip().lower() for o in flag_values.optimizers)
    values["batch_sizes"] = tuple(batch_sizes)
    return study.StudyConfig(**values)
