"""The venue agent (`nycmg device run`): listens, fingerprints locally, buffers
in SQLite, uploads signed batches. No raw audio leaves the room.

Modules: `config` (the credential file), `source` (audio in, as windows),
`buffer` (the local SQLite queue and read position), `upload` (signed
batches with retries and backoff), `runner` (ties them together).
"""
