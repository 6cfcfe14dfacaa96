"""A metric worker behind ``python -m app worker <agent>``: one faust app per agent, on the
``nats://`` transport.

- ``factory``  the faust App factory: an agent module (by name or file) wired to its topic,
               tables, results and state
- ``process``  running one worker process: reach NATS first, then faust's Worker until a signal
- ``monitoring``  its HTTP endpoint on ``METRICS_PORT``: ``/metrics``, ``/healthz``, ``/readyz``
"""

from app.worker.factory import agent_names, load_agent, make_app
from app.worker.process import run_worker

__all__ = ["agent_names", "load_agent", "make_app", "run_worker"]
