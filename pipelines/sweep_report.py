"""A sweep's comparison: a CSV of every point, a markdown table of means, a plot per knob.

The CSV has one row per point (one seed): the knobs, the seed, the point's MLflow run and
each compared metric exactly as its step logged it. The markdown table groups the seeds of
a point: mean ± sample standard deviation (``n`` seeds). Each plot shows one swept knob on x
and, per metric, the mean and the spread (± std) of every point with that knob value; a
metric logged by both ``train`` and ``evaluate`` is drawn as train vs test on one panel
(``train.train_split_<metric>``, the final model on the train split, pairs with
``evaluate.<metric>`` too).
"""

from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

POINTS_CSV = "sweep_points.csv"
TABLE_MD = "sweep_table.md"
STEP_LABELS = {"train": "train", "evaluate": "test"}
# ``train.measure_train_split`` logs the final model on the train split as train_split_*: the
# training error, drawn on the same panel as the test metric of the same name.
TRAIN_SPLIT = "train_split_"


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def points_csv(spec, rows: Sequence, path: Path) -> Path:
    """Writes one line per point; returns ``path``."""
    header = ["point", *spec.knob_names, "seed", "status", "run_id", *spec.metrics]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            knobs = dict(r.point.knobs)
            w.writerow(
                [
                    r.point.index + 1,
                    *(_cell(knobs[k]) if k in knobs else "" for k in spec.knob_names),
                    "" if r.point.seed is None else r.point.seed,
                    "failed" if r.error else "ok",
                    r.run_id,
                    *(repr(r.metrics[m]) if m in r.metrics else "" for m in spec.metrics),
                ]
            )
    return path


def mean_spread(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample standard deviation; 0 for a single value)."""
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else 0.0


def _groups(rows: Iterable, key) -> dict[Any, list]:
    groups: dict[Any, list] = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    return groups


def markdown(spec, rows: Sequence) -> str:
    """The comparison table: one line per knob setting, mean ± std over its seeds."""
    header = [*spec.knob_names, "n", *spec.metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    # Keyed by JSON: a knob's value may be a list (preprocess.steps), which is unhashable.
    for group in _groups(rows, lambda r: json.dumps(r.point.knobs)).values():
        values = dict(group[0].point.knobs)
        cells = [_cell(values[k]) if k in values else "" for k in spec.knob_names]
        cells.append(str(len(group)))
        for m in spec.metrics:
            got = [r.metrics[m] for r in group if m in r.metrics]
            if not got:
                cells.append("–")
                continue
            mean, std = mean_spread(got)
            cells.append(f"{mean:.4f} ± {std:.4f}" if len(got) > 1 else f"{mean:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _panels(metrics: Sequence[str]) -> dict[str, list[str]]:
    """``metric name -> [STEP.METRIC, ...]``: train and test of one metric share a panel."""
    panels: dict[str, list[str]] = defaultdict(list)
    for m in metrics:
        panels[m.split(".", 1)[1].removeprefix(TRAIN_SPLIT)].append(m)
    return panels


def _tick(value: Any) -> str:
    """A tick label: a list value (``preprocess.steps``) as ``crop+resize+gcn``."""
    if isinstance(value, list):
        return "+".join(map(_cell, value)) or "[]"
    return _cell(value)


def series_label(metric: str) -> str:
    """``evaluate.accuracy`` -> "test"; ``train.train_split_accuracy`` -> "train (final model)"."""
    step, name = metric.split(".", 1)
    label = STEP_LABELS.get(step, step)
    return f"{label} (final model)" if name.startswith(TRAIN_SPLIT) else label


def _draw_knob(axes, spec, rows: Sequence, knob: str) -> None:
    """One panel per metric on ``axes``: mean ± std against ``knob``'s values."""
    with_knob = [r for r in rows if knob in dict(r.point.knobs)]
    by_value = _groups(with_knob, lambda r: _tick(dict(r.point.knobs)[knob]))
    labels = list(by_value)
    for ax, (name, series) in zip(axes, _panels(spec.metrics).items(), strict=True):
        for m in series:
            xs, means, stds = [], [], []
            for i, label in enumerate(labels):
                got = [r.metrics[m] for r in by_value[label] if m in r.metrics]
                if got:
                    mean, std = mean_spread(got)
                    xs.append(i)
                    means.append(mean)
                    stds.append(std)
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=4, label=series_label(m))
        long = max(map(len, labels)) > 8
        ax.set_xticks(
            range(len(labels)), labels, rotation=25 if long else 0, ha="right" if long else "center"
        )
        ax.set_xlabel(knob)
        ax.set_ylabel(name)
        ax.legend()


def knob_plot(spec, rows: Sequence, knob: str, path: Path) -> Path:
    """Plots each metric against ``knob``: mean ± std over every point with that value."""
    return overview_plot(spec, rows, path, knobs=(knob,))


def overview_plot(spec, rows: Sequence, path: Path, knobs: Sequence[str] | None = None) -> Path:
    """One row of panels per knob (default: every swept knob) in one figure."""
    from convflow.components.plotting import pyplot

    plt = pyplot()
    knobs = list(knobs or spec.knob_names)
    ncols = len(_panels(spec.metrics))
    fig, axes = plt.subplots(
        len(knobs), ncols, figsize=(4.5 * ncols, 3.6 * len(knobs)), squeeze=False
    )
    for row, knob in zip(axes, knobs, strict=True):
        _draw_knob(row, spec, rows, knob)
    fig.suptitle(f"{spec.name}: mean ± std over seeds (and other knobs)")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (3.6 * len(knobs))))  # room for the title
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def rows_from_csv(spec, path: Path) -> list:
    """The points of a ``sweep_points.csv`` that :func:`points_csv` wrote for ``spec``, as
    :class:`~convflow.pipelines.sweep.PointResult` rows (to draw its plots again).

    Raises:
        ValueError: the CSV names a point the sweep file does not have.
    """
    from convflow.pipelines.sweep import PointResult

    rows = []
    with open(path, newline="") as f:
        for line in csv.DictReader(f):
            index = int(line["point"]) - 1
            if not 0 <= index < len(spec.points):
                raise ValueError(f"{path}: point {index + 1} is not in sweep {spec.name!r}")
            metrics = {m: float(line[m]) for m in spec.metrics if line.get(m)}
            error = "failed" if line["status"] == "failed" else ""
            rows.append(PointResult(spec.points[index], line["run_id"], {}, metrics, error))
    return rows


def write(spec, rows: Sequence, folder: Path) -> list[Path]:
    """Writes the CSV, the markdown table and one plot per knob into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    files = [points_csv(spec, rows, folder / POINTS_CSV)]
    (folder / TABLE_MD).write_text(markdown(spec, rows))
    files.append(folder / TABLE_MD)
    for knob in spec.knob_names:
        safe = knob.replace("/", "_")
        files.append(knob_plot(spec, rows, knob, folder / f"sweep_{safe}.png"))
    return files
