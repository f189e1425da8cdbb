"""Detection: venues' devices recognise the music in the room and report plays (DESIGN.md 8).

`setup(app)` installs the device and batch API, the device documents
(`/devices/UUID`, the keyId of a device's signatures) and the fingerprint
index's job. The models are imported here so `Base.metadata` has them.
"""

from __future__ import annotations

import importlib

from aiohttp import web

# The tables (device_models), and this subsystem's endpoints declared on the
# core's API table as soon as the package is loaded (the CLI loads it too),
# so the table, the OpenAPI document and docs/api.md's test see them.
from . import batches, device_api, device_models  # noqa: F401


def setup(app: web.Application) -> None:
    """Install this subsystem's routes, jobs, subscribers and federation handlers."""
    from node.api import API

    API.install(app)  # the device and batch endpoints declared on import
    app.router.add_get(
        r"/devices/{uuid:[0-9a-f\-]{36}}", device_api.device_document, name="detection.device"
    )
    # The fingerprint index (detection.index, its own helper's part) installs
    # its job and `track.ready` subscriber through its own setup, when present.
    for name in ("index", "matching"):
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            continue
        if hasattr(module, "setup"):
            module.setup(app)
