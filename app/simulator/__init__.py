"""The classroom simulator behind ``python -m app simulate``: students playing games, as events.

- ``behaviour``  how one simulated student behaves: a profile and the steps it leads to
- ``classroom``  whose turn it is, what they do, and the faults mixed in
- ``events``     steps turned into events of the contract, deliberate faults included
- ``senders``    where the events go: HTTP ingest or the NATS ingest subjects
- ``run``        one run: pacing, retries, the report line
"""

from app.simulator.run import INGEST_MODES, SimulatorOptions, Totals, run_simulator, simulate

__all__ = ["INGEST_MODES", "SimulatorOptions", "Totals", "run_simulator", "simulate"]
