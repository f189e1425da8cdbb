"""Request parameters: the query string and, for form POST (OpenSubsonic
`formPost`), the form body, read the same way.

Subsonic clients spell booleans `true`, `True` or `1`; numbers arrive as
text; lists repeat a name (`id=1&id=2`). Every number is bounded here so a
handler never sees an absurd size or offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from node.web_helpers import read_at_most

from .errors import bad_value, missing

MAX_FORM_BYTES = 256 * 1024
MAX_LIST = 1000

TRUE = {"true", "1", "yes", "on"}
FALSE = {"false", "0", "no", "off", ""}


async def read_params(request: web.Request) -> Params:
    values: MultiDict[str] = MultiDict(request.query)
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        # Read at most MAX_FORM_BYTES: the app's own body limit is sized for audio uploads.
        if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
            raise bad_value("body", "is too large")
        raw = await read_at_most(request, MAX_FORM_BYTES)
        if len(raw) > MAX_FORM_BYTES:
            raise bad_value("body", "is too large")
        try:
            pairs = parse_qsl(
                raw.decode("utf-8"), keep_blank_values=True, max_num_fields=2 * MAX_LIST
            )
        except (UnicodeDecodeError, ValueError):
            raise bad_value("body", "is not a readable form") from None
        for key, value in pairs:
            values.add(key, value)
    return Params(MultiDictProxy(values))


@dataclass(frozen=True)
class Params:
    values: MultiDictProxy[str]

    def has(self, name: str) -> bool:
        return name in self.values

    def str(self, name: str, default: str | None = None, *, max_length: int = 1000) -> str | None:
        value = self.values.get(name)
        if value is None:
            return default
        if len(value) > max_length:
            raise bad_value(name, f"is longer than {max_length} characters")
        return value

    def required(self, name: str, *, max_length: int = 1000) -> str:
        value = self.str(name, max_length=max_length)
        if value is None or value == "":
            raise missing(name)
        return value

    def list(self, name: str, *, max_length: int = 200) -> list[str]:
        items = self.values.getall(name, [])
        if len(items) > MAX_LIST:
            raise bad_value(name, f"is given more than {MAX_LIST} times")
        for item in items:
            if len(item) > max_length:
                raise bad_value(name, f"is longer than {max_length} characters")
        return [i for i in items if i != ""]

    def int(
        self, name: str, default: int | None = None, *, low: int = 0, high: int = 2**31 - 1
    ) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            raise bad_value(name, "must be a whole number") from None
        if not low <= number <= high:
            raise bad_value(name, f"must be between {low} and {high}")
        return number

    def required_int(self, name: str, *, low: int = 0, high: int = 2**31 - 1) -> int:
        number = self.int(name, low=low, high=high)
        if number is None:
            raise missing(name)
        return number

    def bool(self, name: str, default: bool | None = None) -> bool | None:
        value = self.values.get(name)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in TRUE:
            return True
        if lowered in FALSE:
            return False
        raise bad_value(name, "must be true or false")
