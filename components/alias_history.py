"""Where an alias pointed before: every alias move, recorded in the tracking store.

MLflow keeps where an alias points now, not where it pointed before. convflow records each
move it makes as a finished run in the experiment :data:`HISTORY_EXPERIMENT` of the same
tracking store (so every team member sees it, in the UI too), tagged with the model, the
alias, the versions it moved from and to, the pipeline run and trigger that moved it, and
why. The run's start time is when it moved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

HISTORY_EXPERIMENT = "convflow-alias-history"
P = "convflow.history."  # tag prefix
FIELDS = ("model", "alias", "from_version", "to_version", "pipeline_run_id", "trigger", "reason")


@dataclass(frozen=True)
class AliasMove:
    """One alias move. Versions are strings; ``from_version`` is "" when the alias was new."""

    model: str
    alias: str
    from_version: str
    to_version: str
    when: float  # epoch seconds
    pipeline_run_id: str = ""
    trigger: str = "manual"
    reason: str = ""


def _experiment_id(client) -> str:
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(HISTORY_EXPERIMENT)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(
            HISTORY_EXPERIMENT, tags={"mlflow.note.content": "alias moves made by convflow"}
        )
    except MlflowException as e:  # another run created it first
        if getattr(e, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(HISTORY_EXPERIMENT).experiment_id


def record(client, move: AliasMove) -> str:
    """Writes ``move`` to the tracking store; returns the history run's id."""
    tags = {P + f: str(getattr(move, f) or "")[:5000] for f in FIELDS}
    name = f"{move.model}@{move.alias}: {move.from_version or 'none'} -> {move.to_version}"
    run = client.create_run(
        _experiment_id(client), start_time=int(move.when * 1000), tags=tags, run_name=name
    )
    client.set_terminated(run.info.run_id, "FINISHED", end_time=int(move.when * 1000))
    return run.info.run_id


def moves(client, model: str, alias: str | None = None, limit: int = 1000) -> list[AliasMove]:
    """Recorded moves of ``model``'s aliases (or of one alias), newest first."""
    exp = client.get_experiment_by_name(HISTORY_EXPERIMENT)
    if exp is None:
        return []
    quoted = model.replace("'", "\\'")
    query = f"tags.`{P}model` = '{quoted}'"
    if alias:
        query += f" and tags.`{P}alias` = '{alias}'"
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=query,
        order_by=["attributes.start_time DESC"],
        max_results=limit,
    )
    out = []
    for run in runs:
        tags = run.data.tags
        values = {f: tags.get(P + f, "") for f in FIELDS}
        out.append(AliasMove(when=run.info.start_time / 1000, **values))
    return out


def table(history: list[AliasMove]) -> str:
    """A plain-text table of ``history`` (already ordered), for ``convflow history``."""
    header = ("when (UTC)", "alias", "from", "to", "trigger", "pipeline run", "reason")
    rows = [header]
    for m in history:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(m.when))
        rows.append(
            (
                when,
                m.alias,
                m.from_version or "-",
                m.to_version,
                m.trigger,
                m.pipeline_run_id[:12] or "-",
                m.reason,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    )
