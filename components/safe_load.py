"""Checks a model's MLmodel before ``mlflow.pyfunc.load_model`` may import anything.

``mlflow.pyfunc.load_model`` imports the ``loader_module`` an MLmodel names, puts its
``code`` paths on ``sys.path`` and unpickles custom Python models: a model directory, or a
registered version someone else pushed, runs arbitrary Python on the consumer's machine.
convflow itself only logs one kind of model (components/serving.py): the ``keras`` flavor
as an exported TF SavedModel (a graph, no Python), loaded through ``mlflow.keras``, with a
signature and no code paths. Anything else is refused unless the user opts in.
"""

from __future__ import annotations

TRUST_ENV = "CONVFLOW_TRUST_FOREIGN_MODELS"  # "1": evaluate loads a foreign champion too
ALLOWED_FLAVORS = {"keras", "python_function"}
LOADER = "mlflow.keras"


class UnsafeModel(ValueError):
    """The MLmodel is not one convflow logged; the message says what and how to opt in."""


def read_mlmodel(model_uri: str):
    """The ``mlflow.models.Model`` of ``model_uri`` (downloads the MLmodel file only)."""
    from mlflow.models import Model

    return Model.load(model_uri)


def problems(mlmodel) -> list[str]:
    """What makes ``mlmodel`` something convflow did not log; empty when it is convflow's."""
    flavors = mlmodel.flavors or {}
    found = []
    foreign = sorted(set(flavors) - ALLOWED_FLAVORS)
    if foreign:
        found.append(f"foreign flavors {foreign}")
    pyfunc = flavors.get("python_function") or {}
    if pyfunc.get("loader_module") != LOADER:
        found.append(f"loader_module {pyfunc.get('loader_module')!r} (convflow's is {LOADER!r})")
    for name, flavor in flavors.items():
        if (flavor or {}).get("code"):
            found.append(f"{name} code paths {flavor['code']!r}")
    if not (flavors.get("keras") or {}).get("save_exported_model"):
        found.append("not an exported SavedModel (keras.save_exported_model is not true)")
    return found


def check_model(model_uri: str, trust: bool = False) -> None:
    """Refuses, before loading, a model that could run code or that has no signature.

    Args:
        model_uri: any MLflow model URI or local model directory.
        trust: load a foreign model anyway (the user trusts its code).

    Raises:
        UnsafeModel: one line naming the model, what is wrong and the opt-in.
    """
    mlmodel = read_mlmodel(model_uri)
    if not trust:
        found = problems(mlmodel)
        if found:
            raise UnsafeModel(
                f"{model_uri} was not logged by convflow ({'; '.join(found)}); loading it "
                "could run its code: pass --trust-model (predict) or set "
                f"{TRUST_ENV}=1 (evaluate) only if you trust it"
            )
    if mlmodel.signature is None or mlmodel.signature.inputs is None:
        raise UnsafeModel(
            f"{model_uri} has no input signature; convflow needs one to feed it images "
            "(log the model with a signature)"
        )
