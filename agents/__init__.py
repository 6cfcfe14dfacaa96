"""One module per agent; each is a short faust agent over a stream, writing to tables."""

__all__: list[str] = []
