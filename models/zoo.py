"""Imports every family module so their ``@register`` calls run.

The imports are spelled out (not discovered) so that the pipeline's cache keys, which
follow import statements, see every family a model may come from: editing
models/lenet.py re-runs the train step that builds a LeNet.
"""

from convflow.models import (  # noqa: F401
    alexnet,
    audio,
    deconvnet,
    densenet,
    dilated,
    fcn,
    googlenet,
    lenet,
    resnet,
    segnet,
    unet,
    vgg,
    volumetric,
    yolo,
    yolov8,
)
