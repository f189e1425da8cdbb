"""Domain services: plain async functions over (ctx, session, ...).

Each validates what the API or the web already parsed against the rules of
the domain, writes rows and emits events on the bus in the same transaction.
"""
