"""Typed refinements of some metrics' results: optional, never required.

A module here named after a metric (``contract/typed/<metric>.py``) defines ``RESULT``, a subclass
of :class:`contract.results.Result` whose ``values`` are a :class:`contract.results.TypedValues`
model; :func:`contract.results.parse_result` returns it for that metric's results, and
``python -m contract.schemas`` writes ``schemas/values/<metric>.json`` from it. A metric without
one is read as :class:`contract.results.MetricResult`, whose values are an open mapping.

The words the refinements share are here.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, NonNegativeFloat, NonNegativeInt

__all__ = ["Amount", "Ratio"]

#: a share between 0 and 1
Ratio = Annotated[float, Field(ge=0, le=1)]
#: a count or a sum: int | float, so pydantic's smart union keeps 150 an int and 150.5 a float
Amount = NonNegativeInt | NonNegativeFloat
