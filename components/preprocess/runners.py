"""Which Beam runner the preprocess job runs on, and the checks that keep it offline-safe.

One Beam job (``beam_job.py``) runs on every runner; this module only turns
``preprocess.runner`` and ``preprocess.beam_args`` into pipeline flags and stops, with one
line, a run that would otherwise die later in a download or a connection stack trace:

- ``DirectRunner`` is pinned to Beam's in-process FnApiRunner. Beam's own "DirectRunner"
  (SwitchingDirectRunner) first tries the Prism runner, which downloads a binary at run time
  and fails offline.
- ``DaskRunner`` runs on a ``dask.distributed`` cluster (``--dask_client_address``); it needs
  ``apache-beam[dask]`` (convflow's ``dask`` extra).
- ``FlinkRunner`` / ``SparkRunner`` start a Beam job server from a jar; offline that jar must
  be staged locally (``--flink_job_server_jar`` / ``--spark_job_server_jar``), or a running
  job server named with ``--job_endpoint``.
- ``PrismRunner`` needs a local binary (``--prism_location``).

Nothing here imports Beam at module level: ``convflow validate`` reads the params only.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Sequence

from convflow.components.base import ComponentError

DIRECT = "DirectRunner"
DASK = "DaskRunner"
# Beam's in-process runner (what SwitchingDirectRunner falls back to), named so no Prism.
IN_PROCESS = "FnApiRunner"
DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
# runner -> (the flag naming a locally staged jar, what the jar is).
JOB_SERVER_JARS = {
    "FlinkRunner": ("flink_job_server_jar", "Flink job-server"),
    "SparkRunner": ("spark_job_server_jar", "Spark job-server"),
}
PORTABLE = ("FlinkRunner", "SparkRunner", "PortableRunner", "PrismRunner")


def flag(args: Sequence[str], name: str) -> str | None:
    """The value of ``--name=value`` or ``--name value`` in ``args`` (the last one wins)."""
    value = None
    for i, arg in enumerate(args):
        if arg == f"--{name}" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
    return value


def is_direct(runner: str) -> bool:
    return runner in (DIRECT, "direct", IN_PROCESS)


def is_dask(runner: str) -> bool:
    return runner in (DASK, DASK_RUNNER)


def runner_flag(runner: str) -> str:
    """The ``--runner`` value Beam gets for ``preprocess.runner``."""
    if is_direct(runner):
        return IN_PROCESS
    if is_dask(runner):
        return DASK_RUNNER
    return runner


def check_runner(runner: str, beam_args: Sequence[str]) -> None:
    """Fails with one line when the runner cannot start from this machine as configured.

    Raises:
        ComponentError: a missing package, job-server jar, Java or Prism binary, or a
            DaskRunner without a scheduler address.
    """
    if is_dask(runner):
        if importlib.util.find_spec("distributed") is None:
            raise ComponentError(
                "preprocess.runner=DaskRunner needs dask.distributed: "
                "pip install 'convflow[dask]' (or 'apache-beam[dask]==2.77.0')"
            )
        if not (flag(beam_args, "dask_client_address") or flag(beam_args, "dask_scheduler_file")):
            raise ComponentError(
                "preprocess.runner=DaskRunner needs a cluster: add "
                "'--dask_client_address=tcp://HOST:8786' to preprocess.beam_args "
                "(start one with `dask scheduler` and `dask worker tcp://HOST:8786`)"
            )
    if runner in JOB_SERVER_JARS and not flag(beam_args, "job_endpoint"):
        name, what = JOB_SERVER_JARS[runner]
        jar = flag(beam_args, name)
        if jar is None:
            raise ComponentError(
                f"preprocess.runner={runner} would download Beam's {what} jar, which fails "
                f"offline: stage it and add '--{name}=/path/to/the.jar' to preprocess.beam_args "
                "(or '--job_endpoint=HOST:8099' of a running job server)"
            )
        if not os.path.isfile(jar):
            raise ComponentError(f"preprocess.beam_args: --{name}={jar} does not exist")
        if shutil.which("java") is None:
            raise ComponentError(
                f"preprocess.runner={runner}: the {what} jar needs Java on PATH "
                "(apt-get install default-jre-headless)"
            )
    if runner == "PrismRunner":
        location = flag(beam_args, "prism_location")
        if location is None or not os.path.exists(location):
            raise ComponentError(
                "preprocess.runner=PrismRunner would download the Prism binary, which fails "
                "offline: add '--prism_location=/path/to/prism' to preprocess.beam_args, or use "
                "the in-process DirectRunner"
            )


def dask_partitions(beam_args: Sequence[str], num_shards: int) -> list[str]:
    """One Dask bag partition per input shard, unless the flags choose otherwise.

    Beam's DaskRunner puts up to 128 elements in one partition; the job's elements are
    whole shards, so without this one worker would do all the work.
    """
    if flag(beam_args, "dask_npartitions") or flag(beam_args, "dask_partition_size"):
        return []
    return [f"--dask_npartitions={max(1, num_shards)}"]
