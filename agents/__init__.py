"""One module per metric; each is a short faust agent over a stream, writing to tables.

The worker runs every top-level module here as an agent (``python -m app worker <module>``); the
runtime the metrics share is the subpackage :mod:`agents.windowed`, which is not an agent.
:func:`metric_modules` lists them without importing any (nor faust): the registry of modules the
demo starts and the NATS permissions are rendered for.
"""

import pkgutil

__all__ = ["metric_modules"]


def metric_modules() -> list[str]:
    """The names of the agent modules here (``agents/<name>.py``), sorted; subpackages and
    ``_private`` modules are not agents."""
    return sorted(
        info.name for info in pkgutil.iter_modules(__path__) if not info.ispkg and not info.name.startswith("_")
    )
