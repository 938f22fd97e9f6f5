"""An MLflow write that lost an insert race is made once more; other errors are not."""

from __future__ import annotations

import pytest
from convflow.components.insert_race import retried_once_on_insert_race
from mlflow.exceptions import MlflowException

POSTGRES = (
    "BAD_REQUEST: (psycopg2.errors.UniqueViolation) duplicate key value violates unique "
    'constraint "registered_model_alias_pk"'
)


def _failing(times: int, message: str):
    calls = []

    def call(*args, **kwargs):
        calls.append((args, kwargs))
        if len(calls) <= times:
            raise MlflowException(message)
        return "done"

    return call, calls


@pytest.mark.parametrize("message", [POSTGRES, "(sqlite3.IntegrityError) UNIQUE constraint failed"])
def test_a_lost_insert_race_is_made_once_more(message):
    call, calls = _failing(1, message)
    assert retried_once_on_insert_race(call, "m", "challenger", version="2") == "done"
    assert calls == [(("m", "challenger"), {"version": "2"})] * 2


def test_another_error_or_a_second_loss_is_raised():
    call, calls = _failing(1, "RESOURCE_DOES_NOT_EXIST: no such model")
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        retried_once_on_insert_race(call)
    assert len(calls) == 1
    call, calls = _failing(2, POSTGRES)
    with pytest.raises(MlflowException, match="unique constraint"):
        retried_once_on_insert_race(call)
    assert len(calls) == 2
