"""The ingest step: ``spec`` declares it (light), ``executor`` reads the sources."""

from convflow.components.ingest.spec import FASHION_MNIST_CLASSES, REJECTED_FILE, Params, ingest

__all__ = ["FASHION_MNIST_CLASSES", "REJECTED_FILE", "Params", "ingest"]
