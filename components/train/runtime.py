"""Where training runs: dtype policy (mixed precision), distribution strategy, seeding."""

from __future__ import annotations

import contextlib
from pathlib import Path

from convflow.components.base import ComponentError

# CPU flags that make bfloat16 matmuls/convolutions native (oneDNN uses them); without
# them bfloat16 is emulated and slower than float32.
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_supports_bfloat16(cpuinfo: str | None = None) -> bool:
    """True when the CPU has native bfloat16 arithmetic (Intel AVX512-BF16 or AMX)."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.exists() else ""
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return any(f in flags for f in _BF16_FLAGS)


def resolve_precision(precision: str, has_gpu: bool | None = None) -> str:
    """``auto`` -> mixed_float16 on GPU, mixed_bfloat16 on a bf16 CPU, float32 otherwise.

    Micikevicius et al. 2018 ("Mixed Precision Training"): half-precision compute with
    float32 master weights; float16 needs loss scaling, bfloat16 (same exponent range as
    float32) does not.
    """
    if precision != "auto":
        return precision
    if has_gpu is None:
        import tensorflow as tf

        has_gpu = bool(tf.config.list_physical_devices("GPU"))
    if has_gpu:
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_supports_bfloat16() else "float32"


@contextlib.contextmanager
def dtype_policy(policy: str):
    """Sets Keras's global dtype policy for the models built inside, then restores it."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def make_strategy(name: str):
    """The tf.distribute strategy for ``name`` (default = the current/no-op strategy)."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        # Reads the cluster from TF_CONFIG (set per worker by train/multiworker.py). It must be
        # created before the process runs any other TF op.
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ComponentError(
        f"train.strategy={name!r} is unknown; use default, mirrored or multi_worker_mirrored"
    )


SEED_ZERO_TF_SEED = 0x5EED  # below 2**31 - 1, which TF truncates back to 0


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seeds Python, NumPy and TF; optionally makes TF ops deterministic (process-wide)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if seed == 0:
        # TF's random_seed.get_seed compares (graph seed, op seed) with (0, 0) in Python; with
        # a graph seed of 0, the per-epoch shuffle's symbolic op seed (data.train_dataset)
        # becomes a tensor used as a bool and training crashed. Any fixed nonzero TF seed
        # keeps seed 0 reproducible.
        tf.random.set_seed(SEED_ZERO_TF_SEED)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def distributable(dataset, strategy: str):
    """Multi-worker: every worker reads the files and keeps its share of each global batch.

    TF's default (AUTO) tries to shard by file first, and a split of fewer files than
    workers would leave a worker without data.
    """
    if strategy != "multi_worker_mirrored":
        return dataset
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def multi_worker_keras(model) -> None:
    """Lets Keras 3's ``fit`` run under MultiWorkerMirroredStrategy (keras-team/keras#20585).

    Keras 3.15 fails twice there: its symbolic build reduces a whole data batch with
    ``strategy.reduce`` (MWMS cannot reduce a nested structure), and its "mean" reduction of
    the per-worker metrics passes ``axis=0`` for scalars. Forgetting the model's captured
    strategy defers the build to tracing (Keras's own path without a strategy; ``fit`` runs
    inside ``strategy.scope()``, so every step still runs on it), and the metrics are
    all-reduced with a plain MEAN, so every worker sees the same global loss and accuracy and
    takes the same early-stopping decision.
    """
    from keras.src.backend.tensorflow import trainer

    model._distribute_strategy = None
    if getattr(trainer.reduce_per_replica, "_convflow", False):
        return
    original = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            import tensorflow as tf

            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica._convflow = True
    trainer.reduce_per_replica = reduce_per_replica
