"""The validate_data step: profile the new data, compare, stop the run before train on drift.

The champion's profile is found through the registry: ``@champion``'s version carries the
fingerprint of the examples it was trained on (``convflow.dataset_fingerprint``); the
validate_data run that profiled those examples is tagged with the same fingerprint and
holds the profile as ``profile.*`` metrics. So any team member's run, on any machine that
shares the tracking server, compares with the same baseline.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import matplotlib
import numpy as np
from convflow.components import examples
from convflow.components.base import ComponentError, Context
from convflow.components.examples import ExamplesInfo
from convflow.components.validate_data import profile as prof

STATISTICS_FILE = "statistics.json"  # in the preprocess step's Statistics artifact
REPORT_FILE = "data_validation.json"
PLOT_FILE = "data_drift.png"
FINGERPRINT_TAG = "convflow.dataset_fingerprint"


def _sizes(raw, split: str) -> Counter:
    """Raw images per ``HxWxC`` (read from the records only when sizes differ)."""
    info = ExamplesInfo.from_properties(raw.properties)
    if info.image_shape:
        return Counter({"x".join(map(str, info.image_shape)): info.count(split)})
    from tensorflow.core.example import example_pb2  # only for folders of mixed sizes

    sizes = Counter()
    for path in examples.split_files(raw, split):
        for record in examples.iter_records(path):
            feats = example_pb2.Example.FromString(record).features.feature
            sizes["x".join(map(str, feats[examples.SHAPE].int64_list.value))] += 1
    return sizes


def new_profile(ctx: Context) -> dict:
    split = ctx.params.split
    raw, stats_dir = ctx.inputs["raw_examples"], ctx.inputs["statistics"].path
    statistics = json.loads((stats_dir / STATISTICS_FILE).read_text())
    if split not in statistics:
        raise ComponentError(
            f"validate_data.split={split!r}: the data has no such split ({sorted(statistics)})"
        )
    s = statistics[split]
    info = ExamplesInfo.from_properties(raw.properties)
    accepted = sum(info.count(name) for name in info.splits)
    rejected = info.rejected + sum(v.get("rejected", 0) for v in statistics.values())
    return prof.build(
        split=split,
        count=s["count"],
        class_names=list(info.class_names),
        labels=s["label_histogram"],
        mean=s["before"].get("mean", []),
        std=s["before"].get("std", []),
        sizes=_sizes(raw, split),
        rejected=rejected,
        total=accepted + info.rejected,
    )


def champion_profile(model_name: str | None, class_names: list[str]) -> tuple[dict | None, str]:
    """(the profile of the data @champion was trained on or None, what it was compared with)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(model_name, "champion")
    except MlflowException:  # no such model or alias: nothing trained yet
        return None, "no champion yet"
    label = f"champion version {version.version}"
    fingerprint = version.tags.get(FINGERPRINT_TAG)
    run_id = version.tags.get("convflow.pipeline_run_id")
    if not fingerprint or not run_id:
        return None, f"{label} (no lineage tags)"
    experiment = client.get_run(run_id).info.experiment_id
    runs = client.search_runs(
        [experiment],
        filter_string=f"tags.component = 'validate_data' and tags.`{FINGERPRINT_TAG}` = "
        f"'{fingerprint}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    old = prof.from_metrics(runs[0].data.metrics, class_names) if runs else None
    return old, label if old else f"{label} (trained before validate_data: no profile)"


def plot(new: dict, old: dict | None, baseline: str, path: Path) -> None:
    """Old vs new: class shares, per-channel mean ± std, image sizes."""
    matplotlib.use("Agg")  # files only, never a window (the step may run under a scheduler)
    import matplotlib.pyplot as plt  # after use(): pyplot picks its backend on import

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    width = 0.4
    pairs = [("now", new, 0.0)] + ([(baseline, old, width)] if old else [])
    x = np.arange(len(new["label_share"]))
    for name, p, dx in pairs:
        axes[0].bar(x + dx, p["label_share"][: len(x)], width, label=name)
        c = np.arange(len(p["channel_mean"]))
        axes[1].bar(c + dx, p["channel_mean"], width, yerr=p["channel_std"], capsize=4, label=name)
    mid = width / 2 if old else 0.0  # ticks between the old and the new bar
    names = new.get("class_names") or [str(i) for i in x]
    axes[0].set_xticks(x + mid, names, rotation=45, ha="right", fontsize=7)
    axes[0].set_title("class share")
    channels = np.arange(len(new["channel_mean"]))
    axes[1].set_xticks(channels + mid, [f"channel {i}" for i in channels])
    axes[1].set_title("channel mean ± std (stored pixel values)")
    sizes = sorted(set(new["image_sizes"]) | set(old["image_sizes"] if old else []))[:12]
    s = np.arange(len(sizes))
    for name, p, dx in pairs:
        axes[2].bar(s + dx, [p["image_sizes"].get(k, 0) for k in sizes], width, label=name)
    axes[2].set_xticks(s + mid, sizes, rotation=45, ha="right", fontsize=7)
    axes[2].set_title("image sizes (H x W x C)")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.suptitle(f"data now vs {baseline}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run(ctx: Context) -> None:
    """Compares the new data with @champion's and with the limits; fails before train.

    Raises:
        ComponentError: a check with action ``fail`` tripped (one line: check, old, new).
    """
    new = new_profile(ctx)
    old, baseline = champion_profile(ctx.pipeline.get("model_name"), new["class_names"])
    findings = prof.compare(new, old, ctx.params)
    out = ctx.outputs["report"]
    # Written to work_dir too: the output directory is discarded when the step fails.
    report = {"baseline": baseline, "new": new, "old": old}
    report["checks"] = [f.to_json() for f in findings]
    for folder in (out.path, ctx.work_dir):
        (folder / REPORT_FILE).write_text(json.dumps(report, indent=1))
        plot(new, old, baseline, folder / PLOT_FILE)
    ctx.tracker.set_tags({FINGERPRINT_TAG: ctx.inputs["examples"].fingerprint})
    for name in (REPORT_FILE, PLOT_FILE):
        ctx.tracker.log_artifact(ctx.work_dir / name, artifact_path="data_validation")
    checked = {f"check.{f.check}": f.value for f in findings if f.value is not None}
    ctx.log_metrics(prof.to_metrics(new) | checked)
    tripped = [f for f in findings if f.tripped]
    warned = [f.line(baseline) for f in tripped if f.action == "warn"]
    failed = [f for f in tripped if f.action == "fail"]
    if warned:
        ctx.tracker.set_tags({"data_warnings": " | ".join(warned)[:5000]})
        for line in warned:
            print(f"validate_data: warning: {line}", file=sys.stderr)
    if failed:
        more = f" (+{len(failed) - 1} more, see {ctx.work_dir / REPORT_FILE})" if failed[1:] else ""
        ctx.tracker.set_tags({"data_failed": failed[0].check})
        raise ComponentError(
            f"{failed[0].line(baseline)}{more}; stopped before training (set "
            f"validate_data.{failed[0].check}.action=warn or a larger limit to train anyway)"
        )
    out.properties.update(baseline=baseline, warnings=len(warned), split=new["split"])
    print(f"validate_data: {len(findings)} checks against {baseline}: {len(warned)} warnings")
