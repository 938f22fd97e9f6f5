"""The preprocess step's declaration: params (config section ``preprocess``) and contract.

Preprocess turns raw Examples into transformed ones on Apache Beam: scaling to [0, 1], then
the transforms of ``preprocess.steps`` from the one transform table (components/transforms.py),
with the task moving its targets through crops and resizes. The work is in executor.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from convflow.components.base import (
    RAW_EXAMPLES,
    STATISTICS,
    TRANSFORMED_EXAMPLES,
    ComponentError,
    declare,
    param,
)
from convflow.components.preprocess import runners
from convflow.components.transforms import (
    CROP,
    GCN,
    INTERPOLATIONS,
    LCN,
    RESIZE,
    STANDARDIZE,
    STEPS,
    GcnParams,
    LcnParams,
    check_steps,
)

STATISTICS_FILE = "statistics.json"
SAMPLES_FILE = "samples.png"
REJECTED_FILE = "rejected.jsonl"

RUNNING_MODES = ("in_memory", "multi_threading", "multi_processing")


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

    def __post_init__(self):
        if self.beam_args:
            unknown_beam_flags(self.beam_args)


def unknown_beam_flags(args: list[str]) -> None:
    """Raises ValueError naming the first flag that no Beam PipelineOptions class declares.

    The same parse as Beam's ``PipelineOptions.get_all_options``, which would only log
    "Discarding unparseable args" at run time.
    """
    import contextlib
    import logging

    # Imported only when there are flags to check, so validate stays light by default.
    # Beam logs an "apitools not found" warning on import that says nothing about the config.
    logging.disable(logging.WARNING)
    try:
        from apache_beam.options import pipeline_options as po

        # Runners that declare their options in their own module (DaskRunner's
        # --dask_client_address …) register them on import, when installed.
        with contextlib.suppress(ImportError):
            import apache_beam.runners.dask.dask_runner  # noqa: F401
    finally:
        logging.disable(logging.NOTSET)

    parser = po._BeamArgumentParser(allow_abbrev=False)
    for cls in {str(c): c for c in po.PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(args)
    flags = [a for a in unknown if a.startswith("-")]
    if flags:
        raise ValueError(
            f"beam_args: {flags[0]!r} is not a Beam pipeline option (a typo, or a flag of a "
            "runner that is not installed)"
        )


def check(params: Params, task=None) -> None:
    """Cross-field checks the per-field limits cannot express: the transform table's rules,
    and a runner that can start offline (preprocess/runners.py).

    Raises:
        ValueError: one line naming the key and the rule.
    """
    check_steps(params.steps, params.lcn)
    try:
        runners.check_runner(params.runner, params.beam_args)
    except ComponentError as e:
        raise ValueError(str(e)) from None


preprocess = declare(
    name="preprocess",
    executor="convflow.components.preprocess.executor",
    inputs={"examples": RAW_EXAMPLES},
    outputs={"examples": TRANSFORMED_EXAMPLES, "statistics": STATISTICS},
    params=Params,
    check=check,
)

__all__ = [
    "CROP",
    "GCN",
    "INTERPOLATIONS",
    "LCN",
    "RESIZE",
    "STANDARDIZE",
    "STEPS",
    "GcnParams",
    "LcnParams",
    "Params",
    "check",
    "preprocess",
]
