"""The ``nats://`` transport for faust: a reusable driver, not tied to this deployment.

Any faust app runs on JetStream with ``broker="nats://host:4222"``; faust finds :class:`Transport`
here through the ``faust.transports`` entry point, and the ``tracked-memory://`` table store
(:mod:`bridges.transport.store`) through ``faust.stores``.

- ``driver``             the Transport: one :class:`~bridges.transport.session.TransportSession`
                         shared by the consumer and the producer of an app
- ``consumer``           faust's Consumer: partitions from :mod:`bridges.group`, the rebalance
                         order; ``fetching`` its fetch loop; ``committing`` its commit path
                         (state first, then offsets, nothing forgotten on revoke), with
                         ``commit_retry`` (declined commits, pauses while the store is full)
                         and ``state_owners`` (the tables flushed before each commit)
- ``partition_readers``  the assigned partitions' readers and their records as faust messages;
                         ``reader`` one partition's batched pulls
- ``producer``           faust's Producer: pipelined, acknowledged, deduplicated sends
                         whose flushes wait for what was sent before them (``send_ledger``)
- ``publisher``          pipelined, acknowledged JetStream publishing (also used by ingest)
- ``session``, ``topics``, ``offsets``, ``envelope``, ``options``, ``conductor``, ``store``:
                         the shared connection, topics as streams, committed offsets in KV, a
                         message's headers, the broker URL's options, undecodable messages, and
                         table storage that resumes
- ``lag``                each group's lag per partition, read from NATS (for monitoring)
- ``purging``            removing changelog records closed windows leave (:mod:`tables.compaction`)
"""

from bridges.transport.driver import Transport

__all__ = ["Transport"]
