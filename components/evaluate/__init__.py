"""The evaluate step: ``spec`` declares it (light); ``executor`` scores and blesses."""

from convflow.components.base import BLESSING_FILE
from convflow.components.evaluate.blessing import Blessing, ChampionResult, decide
from convflow.components.evaluate.spec import EvaluateParams, evaluate

__all__ = ["BLESSING_FILE", "Blessing", "ChampionResult", "EvaluateParams", "decide", "evaluate"]
