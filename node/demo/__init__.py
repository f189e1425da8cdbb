"""`nycmg demo`: a real network of nodes on loopback, seeded with believable music.

Each node is a whole node, as `nycmg serve` would run it: its own data
directory, keys and SQLite database, its worker, and its own port on
127.0.0.1. All of them run in this one process so that Ctrl-C stops the
lot. Seeding goes through the domain services (never raw SQL), so it
exercises the same events and jobs as a real artist would, and the search
index is built by each node's own worker.

Seeding is a list of named steps. `NODE_STEPS` run on each node in turn;
`NETWORK_STEPS` run once every node is up and seeded, for what spans nodes
(fans following across nodes, plays, a venue device, a live session, a
royalty close: later issues add those there). Every step draws from its own
`random.Random` seeded by node and step name, so the demo is the same on
every run and adding a step does not reshuffle the others.
"""

from .run import DemoError, run_demo
from .seed import ADMIN, DEMO_PASSWORD, NETWORK_STEPS, NODE_STEPS

__all__ = ["ADMIN", "DEMO_PASSWORD", "NETWORK_STEPS", "NODE_STEPS", "DemoError", "run_demo"]
