"""The ingest component (see component.py)."""

from convflow.components.ingest.component import REJECTED_FILE, ingest
from convflow.components.ingest.params import FASHION_MNIST_CLASSES, Params

__all__ = ["FASHION_MNIST_CLASSES", "REJECTED_FILE", "Params", "ingest"]
