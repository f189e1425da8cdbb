"""The API describing itself."""

from __future__ import annotations

from ..appkeys import API as API_KEY
from . import API
from .routing import Call, openapi_document


@API.route("GET", "/api/v1/openapi.json", name="api.openapi", summary="This document", tag="meta")
async def openapi(call: Call):
    return openapi_document(call.request.config_dict[API_KEY], call.ctx)
