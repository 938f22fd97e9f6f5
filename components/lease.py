"""A promotion lease in the MLflow registry: one alias move per model name at a time.

MLflow has no compare-and-set on aliases, so "read @champion, compare, set @champion" is a
race between two runs. What the registry *does* serialize is the creation of a registered
model: its name is the table's primary key, so of two ``create_registered_model`` calls for
one name exactly one succeeds, on sqlite, PostgreSQL or MySQL, through a server or not.

The lease of model ``M`` is therefore a registered model named ``M.convflow-lease``, created
with the holder's id and expiry as tags:

- **acquire**: create it; RESOURCE_ALREADY_EXISTS means someone holds it, so wait (backoff)
  up to ``wait_s``; an *expired* lease (its holder died) is broken by renaming it to a
  unique tombstone, which only one breaker can do, and checking that the tombstone is the
  expired lease that was read (if a fresh lease was renamed by mistake it is renamed back,
  or its holder's next :meth:`Lease.confirm` fails and it moves nothing);
- **confirm**: re-read the lease and check that it is still ours and not near expiry,
  immediately before each alias write;
- **release**: delete it (only if still ours).

Safety needs the holders' clocks to agree to within ``margin_s`` (default 10 s of a 120 s
lease): a lease is only broken after its expiry, and a holder stops writing ``margin_s``
before it. While a promotion is in flight the lease shows up in the registry's model list.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

LEASE_SUFFIX = ".convflow-lease"
OWNER_TAG, EXPIRES_TAG = "convflow.lease.owner", "convflow.lease.expires"
TTL_S, WAIT_S, MARGIN_S = 120.0, 300.0, 10.0


class LeaseUnavailable(Exception):
    """The lease could not be had (held by a live holder past the wait) or was lost."""


def lease_name(model: str) -> str:
    return model + LEASE_SUFFIX


def new_owner() -> str:
    """``host:pid:random``: says who holds a lease, unique per acquisition."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _error_code(e: Exception) -> str:
    return getattr(e, "error_code", "")


def _holder(client, name: str) -> tuple[str, float] | None:
    """(owner, expiry as epoch seconds) of the lease ``name``, None when there is none."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as e:
        if _error_code(e) == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    tags = model.tags or {}
    try:
        expires = float(tags.get(EXPIRES_TAG, "0"))
    except ValueError:
        expires = 0.0
    return tags.get(OWNER_TAG, "?"), expires


@dataclass
class Lease:
    """A held lease; :meth:`confirm` before every write it guards."""

    client: object
    name: str
    owner: str
    margin_s: float = MARGIN_S

    def confirm(self) -> bool:
        """True when the lease is still ours with at least ``margin_s`` left."""
        holder = _holder(self.client, self.name)
        return (
            holder is not None
            and holder[0] == self.owner
            and holder[1] - time.time() > self.margin_s
        )

    def release(self) -> None:
        from mlflow.exceptions import MlflowException

        holder = _holder(self.client, self.name)
        if holder is None or holder[0] != self.owner:
            return
        with contextlib.suppress(MlflowException):  # broken meanwhile: nothing of ours left
            self.client.delete_registered_model(self.name)


def _try_create(client, name: str, owner: str, ttl_s: float) -> bool:
    from mlflow.exceptions import MlflowException

    tags = {OWNER_TAG: owner, EXPIRES_TAG: f"{time.time() + ttl_s:.3f}"}
    try:
        client.create_registered_model(
            name, tags=tags, description="convflow promotion lease (deleted when released)"
        )
    except MlflowException as e:
        if _error_code(e) == "RESOURCE_ALREADY_EXISTS":
            return False
        raise
    return True


def _break_expired(client, name: str, expired_owner: str) -> None:
    """Removes an expired lease; renaming is atomic, so only one breaker gets it."""
    from mlflow.exceptions import MlflowException

    tombstone = f"{name}.expired-{uuid.uuid4().hex[:8]}"
    try:
        client.rename_registered_model(name, tombstone)
    except MlflowException:
        return  # released, or another breaker was first
    holder = _holder(client, tombstone)
    if holder is not None and holder[0] != expired_owner:
        # A fresh lease was created between our read and the rename: give it back. If that
        # fails its holder's confirm() fails too, so it moves nothing.
        with contextlib.suppress(MlflowException):
            client.rename_registered_model(tombstone, name)
            return
    with contextlib.suppress(MlflowException):
        client.delete_registered_model(tombstone)


@contextlib.contextmanager
def promotion_lease(
    client,
    model: str,
    *,
    ttl_s: float = TTL_S,
    wait_s: float = WAIT_S,
    margin_s: float = MARGIN_S,
) -> Iterator[Lease]:
    """Holds the promotion lease of registered model ``model`` inside the block.

    Args:
        client: an ``MlflowClient`` for the registry.
        model: registered model name.
        ttl_s: the lease expires this long after it was taken (a dead holder's lease is
            broken after that).
        wait_s: how long to wait for a live holder before giving up.
        margin_s: a holder stops writing this long before expiry (clock-skew allowance).

    Raises:
        LeaseUnavailable: held by someone else for longer than ``wait_s``.
    """
    name, owner = lease_name(model), new_owner()
    deadline, pause = time.monotonic() + wait_s, 0.05
    while not _try_create(client, name, owner, ttl_s):
        holder = _holder(client, name)
        if holder is not None and holder[1] < time.time():
            _break_expired(client, name, holder[0])
            continue
        if time.monotonic() > deadline:
            who = f"{holder[0]} until {time.strftime('%H:%M:%S', time.localtime(holder[1]))}"
            raise LeaseUnavailable(
                f"promotion lease {name} is held by {who if holder else 'another run'}; "
                f"waited {wait_s:.0f}s"
            )
        time.sleep(pause)
        pause = min(pause * 2, 1.0)
    lease = Lease(client, name, owner, margin_s)
    try:
        yield lease
    finally:
        lease.release()
