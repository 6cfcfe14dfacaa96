"""One module per metric; each is a short faust agent over a stream, writing to tables.

The worker runs every top-level module here as an agent (``python -m app worker <module>``); the
runtime the metrics share is the subpackage :mod:`agents.windowed`, which is not an agent.
"""

__all__: list[str] = []
