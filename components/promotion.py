"""Moving ``@champion``: promotion after a blessing, and rollback; each under the lease.

A promotion is decided in evaluate against the champion of that moment; register re-checks
the decision *under the promotion lease* (:mod:`convflow.components.lease`): if @champion
moved since the blessing was decided, this version was never compared with the new
champion, so it does not take over and the reason says so. Every move is recorded in the
tracking store (:mod:`convflow.components.alias_history`) with its reason.

``CONVFLOW_TEST_PROMOTION_PAUSE_S`` (test-only) pauses that many seconds between reading
@champion and setting it, under the lease, to widen the race window in tests.
"""

from __future__ import annotations

import os
import time

from convflow.components import alias_history
from convflow.components.insert_race import retried_once_on_insert_race
from convflow.components.lease import LeaseUnavailable, promotion_lease

CHAMPION, CHALLENGER = "champion", "challenger"
BLESSED_TAG = "convflow.blessed"
PAUSE_ENV = "CONVFLOW_TEST_PROMOTION_PAUSE_S"


class RollbackError(Exception):
    """A rollback that cannot or must not happen; the message is one line."""


def alias_version(client, model: str, alias: str) -> str | None:
    """The version under ``model@alias``, None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model, alias).version)
    except MlflowException as e:
        code = getattr(e, "error_code", "")
        if code == "RESOURCE_DOES_NOT_EXIST" or (
            code == "INVALID_PARAMETER_VALUE" and "not found" in str(e)
        ):
            return None
        raise


def move_alias(client, model, alias, to_version, *, from_version, reason, run_id="", trigger=""):
    """Sets ``model@alias`` to ``to_version`` and records the move with its reason."""
    # Two pipelines registering one model both set a new @challenger at once.
    retried_once_on_insert_race(client.set_registered_model_alias, model, alias, to_version)
    move = alias_history.AliasMove(
        model=model,
        alias=alias,
        from_version=from_version or "",
        to_version=str(to_version),
        when=time.time(),
        pipeline_run_id=run_id,
        trigger=trigger or "manual",
        reason=reason,
    )
    alias_history.record(client, move)


def _pause_for_tests() -> None:
    seconds = float(os.environ.get(PAUSE_ENV, "0") or 0)
    if seconds > 0:
        time.sleep(seconds)


def promote(client, model: str, version: str, blessing: dict, *, run_id="", trigger=""):
    """Moves @champion to ``version`` when blessed and the decision still holds.

    Args:
        client: an ``MlflowClient`` for the registry.
        model: registered model name.
        version: the new version.
        blessing: evaluate's ``blessing.json``: ``blessed``, ``reasons``, ``champion`` (the
            version it was compared with, or None) and ``compare_with_champion``.
        run_id: the pipeline run, recorded with the move.
        trigger: what started the pipeline run (manual, schedule, data).

    Returns:
        (promoted, reason).
    """
    if not blessing["blessed"]:
        return False, "not blessed: champion unchanged"
    compared = (blessing.get("champion") or {}).get("version")
    comparing = blessing.get("compare_with_champion", True)
    try:
        with promotion_lease(client, model) as lease:
            now = alias_version(client, model, CHAMPION)
            _pause_for_tests()
            if comparing and now != compared:
                return False, (
                    f"champion moved from {compared or 'none'} to {now} after evaluation; this "
                    "version was not compared with it, so it stays challenger (re-run "
                    "evaluate to compare)"
                )
            if comparing or now is None:
                reason = f"blessed: champion {now or 'none'} -> version {version}"
            else:
                reason = (
                    f"promoted on thresholds only (evaluate.compare_with_champion=false): "
                    f"champion {now} -> version {version} without comparing"
                )
            if not lease.confirm():
                return False, f"lost the promotion lease {lease.name} before moving @champion"
            move_alias(
                client,
                model,
                CHAMPION,
                version,
                from_version=now,
                reason=reason + " (" + "; ".join(blessing.get("reasons", [])) + ")",
                run_id=run_id,
                trigger=trigger,
            )
            return True, reason
    except LeaseUnavailable as e:
        return False, f"not promoted: {e}"


def previous_champion(client, model: str, current: str | None) -> str | None:
    """The version @champion pointed to before it moved to ``current`` (from the history)."""
    for move in alias_history.moves(client, model, CHAMPION):
        if move.to_version == current and move.from_version:
            return move.from_version
    return None


def rollback(client, model: str, to: str | None = None, *, force=False, note="", run_id=""):
    """Moves @champion back to the previous champion (or ``to``); returns (from, to).

    Raises:
        RollbackError: no previous champion is known, the version does not exist, it is
            already champion, or it was never blessed (unless ``force``).
    """
    from mlflow.exceptions import MlflowException

    with promotion_lease(client, model) as lease:
        now = alias_version(client, model, CHAMPION)
        target = to or previous_champion(client, model, now)
        if target is None:
            raise RollbackError(
                f"{model}: no earlier champion recorded for @champion={now}; "
                "name one with --to VERSION (see `convflow history`)"
            )
        if target == now:
            raise RollbackError(f"{model}: version {target} is already @champion")
        try:
            mv = client.get_model_version(model, target)
        except MlflowException:
            raise RollbackError(f"{model}: version {target} does not exist") from None
        if (mv.tags or {}).get(BLESSED_TAG) != "true" and not force:
            raise RollbackError(
                f"{model}: version {target} was never blessed; add --force to make it "
                "champion anyway"
            )
        if not lease.confirm():
            raise RollbackError(f"{model}: lost the promotion lease; try again")
        reason = "rollback" + (f": {note}" if note else "") + (" (forced)" if force else "")
        move_alias(client, model, CHAMPION, target, from_version=now, reason=reason, run_id=run_id)
    return now, target
