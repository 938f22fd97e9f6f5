"""The evaluate step: metrics and plots on the test split, and the blessing decision."""

from convflow.components.evaluate.blessing import Blessing, ChampionResult, decide
from convflow.components.evaluate.component import BLESSING_FILE, EvaluateParams, evaluate

__all__ = ["BLESSING_FILE", "Blessing", "ChampionResult", "EvaluateParams", "decide", "evaluate"]
