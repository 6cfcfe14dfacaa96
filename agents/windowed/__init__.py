"""The windowed runtime every metric module of ``agents`` builds on (see :mod:`.runtime`)."""

from agents.windowed.context import AgentContext, ArrivalClock, ResultWriter
from agents.windowed.runtime import CLOCK_INTERVAL, WindowedRuntime, result_document, windowed_metric

__all__ = [
    "AgentContext",
    "ArrivalClock",
    "CLOCK_INTERVAL",
    "ResultWriter",
    "WindowedRuntime",
    "result_document",
    "windowed_metric",
]
