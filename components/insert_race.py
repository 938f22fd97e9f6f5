"""MLflow writes that two pipelines may make at the same moment.

MLflow's SQL tracking and registry stores write a new alias, dataset or tag by looking for
its row and inserting it when absent. Two writers at once both find nothing, and the second
insert fails on the primary key (sqlite: "UNIQUE constraint failed"; PostgreSQL: "duplicate
key value violates unique constraint", e.g. ``registered_model_alias_pk``). The row exists by
then, so the same call made again is an update or finds it. Seen in CI: two pipelines
registering one model on PostgreSQL, both setting ``@challenger`` first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def retried_once_on_insert_race(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``, made once more when it lost an insert race (see above).

    Raises:
        MlflowException: any other error, or the same one twice.
    """
    from mlflow.exceptions import MlflowException

    try:
        return call(*args, **kwargs)
    except MlflowException as e:
        if "unique constraint" not in str(e).lower():
            raise
        return call(*args, **kwargs)
