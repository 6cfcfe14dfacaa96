"""What the wiring hands an agent module: everything it may use, nothing it must look up.

``app`` builds one :class:`AgentContext` per worker and calls the module's
``build(app, context)``; agents never import ``app`` (imports point ``app -> agents``).
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

__all__ = ["AgentContext"]


@dataclass(frozen=True)
class AgentContext:
    #: the topic every ingested event is written to, keyed by student id, raw JSON values
    events: faust.TopicT
    #: window size and grace of the learning metrics, in seconds (from the settings)
    window_seconds: int
    grace_seconds: int
