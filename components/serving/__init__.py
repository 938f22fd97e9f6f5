"""The served model and its consumers, in three modules.

- ``model``: building the served Keras graph (raw uint8 image in -> the transform table's
  layers -> trained network -> the task's post-processing), Keras only;
- ``mlflow_io``: logging it to MLflow with signature, metadata and pinned requirements,
  loading it back, the tracking-URI context and lineage tags;
- ``predict``: the ``convflow predict`` command (image files in, one line per file out).

The names below are light constants shared by the register, evaluate and predict code.
"""

CHAMPION, CHALLENGER = "champion", "challenger"
MODEL_ARTIFACT = "serving_model"
CLASS_NAMES = "class_names"
TASK = "task"

__all__ = ["CHALLENGER", "CHAMPION", "CLASS_NAMES", "MODEL_ARTIFACT", "TASK"]
