"""A helper module imported by the `double` component (tests edit it to bust the cache)."""

FACTOR = 2


def scale(x: int) -> int:
    return x * FACTOR
