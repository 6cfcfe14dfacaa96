"""The pure domain of windowed aggregation. Imports nothing from the other packages.

Windows (:mod:`tables.windows`), aggregators (:mod:`tables.aggregators`), the watermark
(:mod:`tables.watermark`), a metric's definition (:mod:`tables.metric`), the per-partition
windowed state (:mod:`tables.windowed`), what it reports (:mod:`tables.outcomes`) and its
exactly-once recovery from a changelog (:mod:`tables.changelog`), and what of that changelog may be
removed once windows close (:mod:`tables.compaction`). The clock is always passed in: nothing here reads it.
"""

from tables.aggregators import (
    Aggregates,
    Aggregator,
    Count,
    CountDistinct,
    Last,
    Max,
    Mean,
    MergeableAggregator,
    Min,
    Sum,
)
from tables.changelog import ChangelogReplica, Marker, Restored, StateOwner
from tables.errors import (
    BrokenError,
    ClosedError,
    ConfigError,
    FencedError,
    InvalidEventError,
    StateError,
    StorageFull,
    StreamsError,
)
from tables.metric import MetricDefinition
from tables.outcomes import (
    AddResult,
    ClosedWindow,
    Counted,
    Duplicate,
    FailedWindow,
    Ignored,
    Late,
    OpenWindowResult,
)
from tables.watermark import Promise, Watermark
from tables.windowed import PartitionWindows
from tables.windows import Hopping, Session, Tumbling, Window, window_ranges, window_starts

__all__ = [
    "AddResult",
    "Aggregates",
    "Aggregator",
    "BrokenError",
    "ChangelogReplica",
    "ClosedError",
    "ClosedWindow",
    "ConfigError",
    "Count",
    "CountDistinct",
    "Counted",
    "Duplicate",
    "FailedWindow",
    "FencedError",
    "Hopping",
    "Ignored",
    "InvalidEventError",
    "Last",
    "Late",
    "Marker",
    "Max",
    "Mean",
    "MergeableAggregator",
    "MetricDefinition",
    "Min",
    "OpenWindowResult",
    "PartitionWindows",
    "Promise",
    "Restored",
    "Session",
    "StateError",
    "StateOwner",
    "StorageFull",
    "StreamsError",
    "Sum",
    "Tumbling",
    "Watermark",
    "Window",
    "window_ranges",
    "window_starts",
]
