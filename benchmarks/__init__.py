"""The benchmark suite (``python -m benchmarks``) and the stand-alone benchmarks it is made of.

Dev-only, like :mod:`testkit`, whose oracle and worker harness it uses: the product never
imports it. See BENCHMARKS.md for what each stage measures and the figures of the last run.
"""

__all__: list[str] = []
