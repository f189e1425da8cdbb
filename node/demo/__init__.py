"""`nycmg demo`: a real network of nodes on loopback, seeded with believable music.

Each node is a whole node, as `nycmg serve` would run it: its own data
directory, keys and SQLite database, its worker, and its own port on
127.0.0.1. All of them run in this one process so that Ctrl-C stops the
lot. Seeding goes through the domain services (never raw SQL), so it
exercises the same events and jobs as a real artist would, and the search
index is built by each node's own worker.

Seeding is a list of named steps. `NODE_STEPS` run on each node (the nodes
side by side); `NETWORK_STEPS` (across.py) run once every node is up and
seeded, for what spans nodes, over real HTTP and signed ActivityPub: fans
follow artists on the other nodes, a new release crosses over to them, and
their plays of it are reported to its origin (a venue device, a live session
and a royalty close will join them). Every step draws from its own
`random.Random` seeded by node and step name, so the demo is the same on
every run and adding a step does not reshuffle the others; the steps across
nodes are idempotent, so re-running them over the same `--data` adds nothing.
"""

from .run import DemoError, run_demo
from .seed import ADMIN, DEMO_PASSWORD, NETWORK_STEPS, NODE_STEPS

__all__ = ["ADMIN", "DEMO_PASSWORD", "NETWORK_STEPS", "NODE_STEPS", "DemoError", "run_demo"]
