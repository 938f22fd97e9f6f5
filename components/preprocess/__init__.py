"""The ``preprocess`` step: GCN / LCN / square crop and resize on Apache Beam (book §12.2.1.1).

``preprocess`` is the component; ``build_preprocessor`` rebuilds the same transforms as Keras
layers from its output Examples' properties, for the served model.
"""

from convflow.components.preprocess.component import preprocess
from convflow.components.preprocess.params import Params
from convflow.components.preprocess.serving import build_preprocessor, preprocessing_layers

__all__ = ["Params", "build_preprocessor", "preprocess", "preprocessing_layers"]
