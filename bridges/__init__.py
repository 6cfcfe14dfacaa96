"""Every piece of I/O with NATS. The only package that imports ``nats``."""

__all__: list[str] = []
