"""Comuna dev stack: embedded PostgreSQL + NATS, a process supervisor and pytest fixtures.

Everything here runs from the Python environment alone (no Docker, no system services), so
`make run`, the demo and the test-suite behave the same on a laptop and in CI.
"""

from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.ports import free_port, wait_for_tcp
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_devstack.supervisor import ProcessGroup

__all__ = [
    "EmbeddedNats",
    "EmbeddedPostgres",
    "ProcessGroup",
    "free_port",
    "wait_for_tcp",
]
