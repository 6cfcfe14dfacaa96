"""The learning contract: what other teams code against, each fact written once.

- ``events``   the ingest event: its JSON, its validation (:func:`~contract.events.validate_event`)
- ``results``  the result of one window: the KV value and result message, as typed models
- ``names``    ids, metric names, the events topic, the public subjects and the KV key format
- ``schemas``  the event and the result as JSON Schema files under ``schemas/``, for other
               languages (``python -m contract.schemas``)

Every layer imports it (the agents build results with it, bridges route and read by its names,
the web process validates and types with it); it imports only ``tables`` (the error types).
"""

__all__: list[str] = []
