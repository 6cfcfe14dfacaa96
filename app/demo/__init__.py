"""The demo behind ``python -m app demo``: NATS, the metric workers, the web process and a
simulated class, each a child process, started and stopped in order by one supervisor.

- ``supervisor``  the order things start and stop in, and the terminal's story of it
- ``children``    child processes in their own sessions, logged to files, stopped by PID
- ``status``      the status line: events per second, windows closed, late and invalid events
"""

from app.demo.supervisor import AGENTS, run_demo

__all__ = ["AGENTS", "run_demo"]
