"""The learning contract: what other teams code against.

- ``events``   the ingest event: its JSON, its validation (:func:`~contract.events.validate_event`)
- ``results``  the result of one window: the KV value and result message, as typed models

Every layer may import it (the agents build results with it, the web process validates and types
with it, bridges read what it describes); it imports only ``tables`` (the error types).
"""

__all__: list[str] = []
