"""Every piece of I/O with NATS. The only package that imports ``nats``.

Its parts, from the bottom up (``app/__init__.py`` draws the arrows between them):

- ``connection``, ``jetstream``, ``naming``, ``server``, ``usage``, ``storage``  what every part
  shares: reaching NATS (URLs, credentials, TLS, retries), JetStream helpers, how faust's names
  map onto streams, subjects and keys, the embedded nats-server, how full the streams are, and
  telling "storage full" apart; ``credentials`` the faust side of credentials
  (``broker_credentials=NatsCredentials(...)``), apart so that reaching NATS does not load faust,
  and ``secret`` what both hold secrets in
- ``group/``      consumer groups over JetStream KV: leases, a leader, faust's assignor
- ``transport/``  the reusable ``nats://`` driver for faust (any faust app can use it)
- ``public/``     this deployment's public NATS surface: ingest, window results, the metrics
  reader and the results client
"""

__all__: list[str] = []
