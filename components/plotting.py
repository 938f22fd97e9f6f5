"""matplotlib for figures written to files (train curves, evaluation plots, samples)."""

from __future__ import annotations


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend: files only, no display on a worker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
