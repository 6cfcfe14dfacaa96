"""The pure domain of windowed aggregation. Imports nothing from the other packages."""

from tables.errors import BrokenError, ClosedError, ConfigError, FencedError, StreamsError

__all__ = ["BrokenError", "ClosedError", "ConfigError", "FencedError", "StreamsError"]
