"""Params of the ``preprocess`` component (config section ``preprocess``)."""

from __future__ import annotations

from dataclasses import dataclass

from convflow.components.base import param

# models.layers.contrast.INTERPOLATIONS, repeated so that reading params needs no keras
# (a test keeps the two equal).
INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5")

# Step names as used in ``preprocess.steps``; scaling to [0, 1] always runs first.
CROP, RESIZE, GCN, LCN, STANDARDIZE = "crop", "resize", "gcn", "lcn", "standardize"
STEPS = (CROP, RESIZE, GCN, LCN, STANDARDIZE)
RUNNING_MODES = ("in_memory", "multi_threading", "multi_processing")


@dataclass(frozen=True)
class GcnParams:
    """Global contrast normalization, Goodfellow et al. (2016) eq. 12.3."""

    scale: float = param(1.0, help="s: contrast of the output", min_exclusive=0.0)
    lam: float = param(0.0, help="λ: regularizer added to the per-image variance", min=0.0)
    eps: float = param(1e-8, help="ε: smallest divisor (near-constant images)", min_exclusive=0.0)


@dataclass(frozen=True)
class LcnParams:
    """Local contrast normalization (Jarrett et al., 2009) with a Gaussian window."""

    kernel_size: int = param(9, help="odd side of the Gaussian window, pixels", min=1, max=99)
    sigma: float = param(2.0, help="σ of the Gaussian window, pixels", min_exclusive=0.0)
    floor: float = param(1e-4, help="smallest divisor", min_exclusive=0.0)


@dataclass(frozen=True)
class Params:
    """Which transforms run, in which order, and how the Beam job runs.

    The default ``[crop, resize, gcn]`` gives every image one square shape and unit contrast;
    LeNet trains well on it. ``standardize`` (per-channel stats of the training split) must
    come last, because its statistics are measured on the output of the steps before it.

    Runner: the DirectRunner runs ``in_memory`` by default. On this project's shared 2-core
    machine, full Fashion-MNIST (bench/preprocess.py, best of 2, images/s) ran GCN at 24k
    in_memory, 26k multi_threading, 3k multi_processing, and LCN at 13k, 8k and 3k: each
    worker process imports TensorFlow and every batch is pickled between processes, while
    TF's kernels already use all cores within one process. On a many-core machine or a
    cluster, set ``direct_running_mode: multi_processing`` or another ``runner``.
    """

    steps: list[str] = param(
        help="transforms after scaling to [0,1], in order",
        choices=STEPS,
        default_factory=lambda: [CROP, RESIZE, GCN],
    )
    size: int = param(28, help="output height and width in pixels (resize step)", min=1, max=4096)
    interpolation: str = param("bilinear", help="resize interpolation", choices=INTERPOLATIONS)
    antialias: bool = param(True, help="low-pass filter when the resize shrinks")
    gcn: GcnParams = param(help="GCN settings", default_factory=GcnParams)
    lcn: LcnParams = param(help="LCN settings", default_factory=LcnParams)
    batch_size: int = param(10_000, help="images per Beam element", min=1, max=1_000_000)
    max_rejected_fraction: float = param(
        0.01, help="fail when more than this share of records is bad", min=0.0, max=1.0
    )
    runner: str = param(
        "DirectRunner",
        help="Beam runner: DirectRunner (in-process), DaskRunner, FlinkRunner, SparkRunner, …",
    )
    direct_running_mode: str = param(
        "in_memory", help="DirectRunner mode (measured fastest on 2 cores)", choices=RUNNING_MODES
    )
    direct_num_workers: int = param(0, help="DirectRunner workers; 0 = all cores", min=0)
    beam_args: list[str] = param(
        help="extra Beam pipeline options, e.g. ['--dask_client_address=tcp://host:8786']",
        default_factory=list,
    )
    num_samples: int = param(8, help="images per column of samples.png", min=1, max=64)


def check(params: Params) -> None:
    """Cross-field checks the per-field limits cannot express; raises ComponentError."""
    from convflow.components.base import ComponentError

    steps = list(params.steps)
    if len(set(steps)) != len(steps):
        raise ComponentError(f"preprocess.steps={steps!r} repeats a step; list each at most once")
    if STANDARDIZE in steps and steps[-1] != STANDARDIZE:
        raise ComponentError(
            f"preprocess.steps={steps!r}: 'standardize' must be last, because its statistics "
            "are measured on the output of the steps before it"
        )
    if LCN in steps and params.lcn.kernel_size % 2 == 0:
        raise ComponentError(
            f"preprocess.lcn.kernel_size={params.lcn.kernel_size} must be odd (a centred window)"
        )
