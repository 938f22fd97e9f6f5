"""The ``preprocess`` step: the transform table on Apache Beam (book §12.2.1.1).

``spec`` declares it (light); ``executor`` runs the Beam job (``beam_job``). The served model
rebuilds the same transforms as Keras layers: components/serving/model.py.
"""

from convflow.components.preprocess.spec import Params, preprocess

__all__ = ["Params", "preprocess"]
