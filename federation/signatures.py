"""HTTP signatures: everything about signing and verifying server-to-server requests.

This module owns the wire formats and nothing else: no database, no HTTP
client. The verifier is handed an async key lookup (bovine / microblog.pub
style), so the caller decides where keys come from and tests feed keys in
directly.

Out: draft-cavage-12 (`Signature`, `rsa-sha256`), which is what every
fediverse server accepts today; `sign_rfc9421` exists so tests and future
peers can speak RFC 9421.

In: draft-cavage-12 (`rsa-sha256`, `hs2019`) and RFC 9421
(`Signature-Input` + `Signature`, `Content-Digest` per RFC 9530).

Errors are a `MalformedSignature` (400: we cannot even read it, or it does
not cover what our profile requires) or an `InvalidSignature` (401: readable
but wrong, stale, tampered, or signed by a key we cannot find).

References:
- draft-cavage: https://datatracker.ietf.org/doc/html/draft-cavage-http-signatures-12
- RFC 9421: https://www.rfc-editor.org/rfc/rfc9421
- RFC 8941 (structured fields): https://www.rfc-editor.org/rfc/rfc8941
- RFC 9530 (Content-Digest): https://www.rfc-editor.org/rfc/rfc9530
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import functools
import hashlib
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature as _CryptoInvalid
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from node.errors import NodeError

# The clock window, as Mastodon's (app/lib/signed_request.rb): a signature
# may be created up to 1 h ahead, and expires 5 min after creation (or at its
# own `expires`) plus 1 h of clock skew. So by default 60 min ahead, 65 min
# back: future bound = max_skew, past bound = max_skew + 300 s.
EXPIRY_GRACE_SECONDS = 300
MIN_RSA_BITS = 2048

AS2_ACCEPT = 'application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams"'

ALG_RSA_V15 = "rsa-v1_5-sha256"
ALG_RSA_PSS = "rsa-pss-sha512"
ALG_ED25519 = "ed25519"
_RFC9421_ALGS = frozenset({ALG_RSA_V15, ALG_RSA_PSS, ALG_ED25519})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
Idx = dict[str, list[str]]  # lowercased field name -> its field lines
AlgsFor = Callable[[Any], tuple[str, ...]]  # parsed public key -> algorithms to try


class SignatureError(NodeError):
    """A request's signature cannot be accepted; `status` is the HTTP answer."""

    status = 401
    type_slug = "signature"
    title = "Signature not accepted"


class MalformedSignature(SignatureError):
    """We cannot read the signature, or it does not cover what we require (400)."""

    status = 400
    type_slug = "signature-malformed"
    title = "Malformed HTTP signature"


class InvalidSignature(SignatureError):
    """A readable signature that is wrong, stale, tampered or from an unknown key (401)."""

    status = 401
    type_slug = "signature-invalid"
    title = "Invalid HTTP signature"


class MissingSignature(InvalidSignature):
    """The request carries no signature at all (401), so a caller may allow public GETs."""

    type_slug = "signature-missing"
    title = "Request not signed"


def http_status(err: BaseException) -> int:
    """Map a verification failure to the status the inbox answers with."""
    return err.status if isinstance(err, SignatureError) else 500


@dataclass(frozen=True)
class PublicKey:
    """A remote actor's key as the lookup knows it; `owner` is the actor URI."""

    key_id: str
    owner: str
    pem: str


KeyLookup = Callable[[str, bool], Awaitable[PublicKey | None]]
"""`await lookup(key_id, refresh)`: a cached key (refresh=False) or a refetched one."""


@dataclass(frozen=True)
class VerifiedSignature:
    """Who signed a request. `algorithm` is the primitive that verified
    (`rsa-v1_5-sha256`, `rsa-pss-sha512` or `ed25519`), whatever name the
    sender used; `created` is the signed Date or `created` time."""

    key_id: str
    owner: str
    scheme: Literal["cavage", "rfc9421"]
    algorithm: str
    created: datetime


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def digest_header(body: bytes) -> str:
    """The legacy `Digest` value (RFC 3230) that Mastodon requires on POST."""
    return "SHA-256=" + _b64(hashlib.sha256(body).digest())


def content_digest(body: bytes) -> str:
    """The RFC 9530 `Content-Digest` value (a structured-field dictionary)."""
    return "sha-256=:" + _b64(hashlib.sha256(body).digest()) + ":"


_DIGESTS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}


def _check_digests(header: str, value: str, body: bytes) -> None:
    """Every supported digest given must match the body, and there must be one.
    `Digest: SHA-256=b64, SHA-512=b64` (RFC 3230, names case-insensitive) or
    `Content-Digest: sha-256=:b64:` (RFC 9530, a structured dictionary)."""
    found: dict[str, Any] = {}
    if header == "Digest":
        for part in value.split(","):
            alg, sep, b64 = part.strip().partition("=")
            if not sep:
                raise MalformedSignature("Digest header is not algorithm=value")
            found[alg.strip().lower()] = _b64decode(b64, "Digest")
    else:
        found = {alg: item for alg, (item, _p, _s) in _SF(value).dictionary().items()}
    usable = {alg: v for alg, v in found.items() if alg in _DIGESTS}
    if not usable:
        raise MalformedSignature(f"{header} has no SHA-256 or SHA-512 digest")
    for alg, expected in usable.items():
        if not isinstance(expected, bytes):
            raise MalformedSignature(f"{header} values must be byte sequences")
        if _DIGESTS[alg](body).digest() != expected:
            raise InvalidSignature(f"{header} does not match the body ({alg})")


def _b64decode(text: str, what: str) -> bytes:
    text = "".join(text.split())
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as e:
        raise MalformedSignature(f"{what} is not valid base64") from e


@functools.lru_cache(maxsize=256)
def _load_private(pem: str) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    """Parse a local actor's private key, once per PEM: cryptography validates an
    RSA key on load (about 60 ms for 2048 bits), which would otherwise dominate
    every signed delivery and fetch. A rotated key is a new PEM, so a new entry."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise ValueError("only RSA and Ed25519 private keys can sign")
    return key


@functools.lru_cache(maxsize=2048)
def _load_public(pem: str) -> rsa.RSAPublicKey | ed25519.Ed25519PublicKey | None:
    """Parse a remote PEM; None when unusable. Accepts SPKI `PUBLIC KEY` and
    PKCS#1 `RSA PUBLIC KEY` (some servers publish the latter)."""
    try:
        key = serialization.load_pem_public_key(pem.strip().encode())
    except (ValueError, TypeError, UnicodeEncodeError):
        return None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS:
        return key
    return key if isinstance(key, ed25519.Ed25519PublicKey) else None


def _verify_with(key: Any, alg: str, message: bytes, sig: bytes) -> bool:
    try:
        if alg == ALG_RSA_V15 and isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, message, padding.PKCS1v15(), hashes.SHA256())
        elif alg == ALG_RSA_PSS and isinstance(key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64)
            key.verify(sig, message, pss, hashes.SHA512())
        elif alg == ALG_ED25519 and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, message)
        else:
            return False  # the key's type does not fit the algorithm
    except (_CryptoInvalid, ValueError, TypeError):
        return False
    return True


async def _verify_with_lookup(
    lookup: KeyLookup, key_id: str, messages: tuple[bytes, ...], sig: bytes, algs_for: AlgsFor
) -> tuple[PublicKey, str]:
    """Verify with the cached key, then once with a refetched one (key rotation).

    Only a cryptographic failure or an unknown key triggers the refetch; every
    cheap check (parsing, clock, digest) has already passed, so a stream of
    junk requests cannot make us fetch keys.
    """

    def attempt(key: PublicKey) -> str | None:
        parsed = _load_public(key.pem)
        if parsed is None:
            return None
        for alg in algs_for(parsed):
            if any(_verify_with(parsed, alg, message, sig) for message in messages):
                return alg
        return None

    cached = await lookup(key_id, False)
    if cached is not None:
        alg = attempt(cached)
        if alg:
            return cached, alg
    fresh = await lookup(key_id, True)
    if fresh is None:
        raise InvalidSignature(f"unknown key {key_id!r}")
    if cached is None or fresh.pem != cached.pem:
        alg = attempt(fresh)
        if alg:
            return fresh, alg
    raise InvalidSignature("signature does not verify with the key's owner's current key")


def _index(headers: Mapping[str, str]) -> Idx:
    """Lowercased name -> every field line, in order. Works for dicts and
    multidicts alike (multidict `.items()` yields duplicates)."""
    out: Idx = {}
    for k, v in headers.items():
        out.setdefault(str(k).lower(), []).append(str(v))
    return out


def _field_value(idx: Idx, name: str) -> str | None:
    """Combine repeated fields with ", " after trimming each line (RFC 9110 §5.3,
    RFC 9421 §2.1, draft-cavage-12 §2.3); obs-fold becomes a space."""
    lines = idx.get(name)
    if lines is None:
        return None
    return ", ".join(re.sub(r"\r?\n[ \t]+", " ", v).strip(" \t") for v in lines)


def _http_date(value: str) -> int:
    """Seconds since the epoch for an HTTP Date (IMF-fixdate or the obsolete forms)."""
    try:
        return int(email.utils.mktime_tz(email.utils.parsedate_tz(value)))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, IndexError) as e:
        raise MalformedSignature("Date header is not an HTTP date") from e


def _int_param(value: Any, name: str) -> int:
    """A Unix time from a cavage string (decimals allowed, ignored) or an sf integer."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,15}(\.[0-9]{1,9})?", value, re.ASCII):
        value = int(value.partition(".")[0])
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**15:
        raise MalformedSignature(f"{name} is not a Unix timestamp")
    return value


def _check_window(ts: int, now: float, max_skew: int, what: str, expires: int | None) -> None:
    if expires is not None and now > expires + max_skew:
        raise InvalidSignature("signature has expired")
    if ts > now + max_skew:
        raise InvalidSignature(f"{what} is too far in the future")
    if ts < now - max_skew - EXPIRY_GRACE_SECONDS:
        raise InvalidSignature(f"{what} is too old")


def _authority(host: str, scheme: str) -> str:
    """Lowercase host, default port dropped (RFC 9421 §2.2.3)."""
    host = host.strip().lower()
    default = {"https": ":443", "http": ":80"}.get(scheme.lower())
    if default and host.endswith(default):
        host = host[: -len(default)]
    return host


def _url_parts(url: str) -> tuple[str, str, str]:
    """(scheme, authority as sent in Host, origin-form request target)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = _authority(f"{host}:{parts.port}", scheme)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, target


def _sign_bytes(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, message: bytes) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    return key.sign(message, padding.PKCS1v15(), hashes.SHA256())


def _outgoing(
    url: str, headers: Mapping[str, str], body: bytes | None, drop: set[str]
) -> tuple[str, str, dict[str, str]]:
    """(scheme, origin-form target, headers to send): the given headers minus
    the ones we set, plus Host, Date and, with a body, Content-Type."""
    scheme, host, target = _url_parts(url)
    drop = drop | {"host", "date", "signature", "content-type"}
    out = {k: v for k, v in headers.items() if k.lower() not in drop}
    out |= {"Host": host, "Date": email.utils.formatdate(usegmt=True)}
    if body is not None:
        out["Content-Type"] = _header(headers, "content-type") or "application/activity+json"
    return scheme, target, out


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


def sign_request(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
    key_id: str,
    private_key_pem: str,
    *,
    accept: str | None = None,
) -> dict[str, str]:
    """Headers to send for a draft-cavage-12 signed request (what Mastodon expects).

    With a body (POST): Host, Date, Digest, Content-Type (defaults to
    application/activity+json), signed over `(request-target) host date digest
    content-type`. Without (GET, authorized fetch): Host, Date, Accept, signed
    over `(request-target) host date accept`. Other given headers are kept.
    The caller must send exactly `url` (aiohttp: pass a `yarl.URL` it will not
    re-encode) so `(request-target)` matches what the receiver sees.
    """
    if re.search(r'["\\\r\n]', key_id):
        raise ValueError("keyId cannot hold quotes, backslashes or newlines")
    key = _load_private(private_key_pem)
    _scheme, target, out = _outgoing(url, headers, body, {"digest", "accept"})
    if body is not None:
        out["Digest"] = digest_header(body)
        names = ["(request-target)", "host", "date", "digest", "content-type"]
    else:
        out["Accept"] = accept or _header(headers, "accept") or AS2_ACCEPT
        names = ["(request-target)", "host", "date", "accept"]
    values = {"(request-target)": f"{method.lower()} {target}"}
    signing_string = "\n".join(f"{n}: {values.get(n) or out[n.title()]}" for n in names)
    algorithm = "hs2019" if isinstance(key, ed25519.Ed25519PrivateKey) else "rsa-sha256"
    sig = _b64(_sign_bytes(key, signing_string.encode()))
    out["Signature"] = (
        f'keyId="{key_id}",algorithm="{algorithm}",headers="{" ".join(names)}",signature="{sig}"'
    )
    return out


def sign_rfc9421(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
    key_id: str,
    private_key_pem: str,
    *,
    created: int | None = None,
    label: str = "sig1",
) -> dict[str, str]:
    """Headers for an RFC 9421 signed request: covers `@method @target-uri`,
    plus `content-digest content-type` with a body; params `created`, `keyid`.
    The algorithm follows the key (RSA: rsa-v1_5-sha256, Ed25519: ed25519),
    left implicit as RFC 9421 §3.3.7 allows. Host and Date are set too."""
    key = _load_private(private_key_pem)
    scheme, target, out = _outgoing(url, headers, body, {"signature-input", "content-digest"})
    components = ["@method", "@target-uri"]
    if body is not None:
        out["Content-Digest"] = content_digest(body)
        components += ["content-digest", "content-type"]
    created = int(time.time()) if created is None else created
    params = (
        "(" + " ".join(_sf_string(c) for c in components) + ")"
        f";created={created};keyid={_sf_string(key_id)}"
    )
    values = {"@method": method.upper(), "@target-uri": f"{scheme}://{out['Host']}{target}"}
    lines = [f'"{c}": {values[c] if c in values else out[c.title()]}' for c in components]
    lines.append(f'"@signature-params": {params}')
    sig = _sign_bytes(key, "\n".join(lines).encode())
    out["Signature-Input"] = f"{label}={params}"
    out["Signature"] = f"{label}=:{_b64(sig)}:"
    return out


async def verify_request(
    method: str,
    path_qs: str,
    headers: Mapping[str, str],
    body: bytes,
    lookup: KeyLookup,
    *,
    max_skew_seconds: int = 3600,
    now: datetime | None = None,
    scheme: str = "https",
) -> VerifiedSignature:
    """Check a request's signature; return who signed it or raise `SignatureError`.

    `path_qs` is the request target exactly as received (aiohttp:
    `request.raw_path`, not the re-encoded `path_qs`). `headers` is
    case-insensitive; repeated fields are combined per RFC 9110 §5.3.
    `scheme` is the public scheme of this node (the request may reach us as
    http behind a TLS proxy); only RFC 9421's `@target-uri`/`@scheme` use it.
    The clock window is [-(max_skew + 300 s), +max_skew]: by default 65 min
    back and 60 min ahead, as Mastodon.

    The lookup is trusted to return the key whose `key_id` was asked for, and
    to have checked that the key document and its owner share an origin; the
    caller still has to check that `owner` is the activity's actor. Lookup
    exceptions propagate unchanged.
    """
    try:
        idx = _index(headers)
        now_ts = (now or datetime.now(UTC)).timestamp()
        method = str(method).upper()
        has_body = bool(body) or method in _BODY_METHODS
        if "signature-input" in idx:
            prepared = _prepare_rfc9421(
                method, str(path_qs), idx, body, max_skew_seconds, now_ts, scheme, has_body
            )
        else:
            raw = _field_value(idx, "signature")
            if raw is None:
                auth = _field_value(idx, "authorization") or ""
                if auth[:10].lower() == "signature ":
                    raw = auth[10:]  # draft-cavage-12 §3.1: the Authorization form
            if raw is None:
                raise MissingSignature("request is not signed")
            raw = raw.removeprefix("Signature ")  # old node-http-signature (Mastodon allows)
            prepared = _prepare_cavage(
                method, str(path_qs), idx, body, max_skew_seconds, now_ts, has_body, raw
            )
    except SignatureError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, UnicodeError) as e:
        # Belt and braces: any parsing slip on hostile input is still a 400.
        raise MalformedSignature(f"unreadable signature: {type(e).__name__}") from e
    key, alg = await _verify_with_lookup(
        lookup, prepared.key_id, prepared.messages, prepared.sig, prepared.algs_for
    )
    return VerifiedSignature(
        key_id=prepared.key_id,
        owner=key.owner,
        scheme=prepared.scheme,
        algorithm=alg,
        created=datetime.fromtimestamp(prepared.created, UTC),
    )


@dataclass(frozen=True)
class _Prepared:
    """A signature that passed every cheap check and only needs its key."""

    scheme: Literal["cavage", "rfc9421"]
    key_id: str
    messages: tuple[bytes, ...]  # candidate signature bases; any may verify
    sig: bytes
    algs_for: AlgsFor
    created: int


# name = "quoted, \"escaped\" value" | token, then a comma or the end. The quoted
# part is the "unrolled loop" form of ("[^"\\]|\\.)*": the same strings, matched
# without an alternation per character (5x faster on a 344-character signature;
# every inbox request parses one).
_CAVAGE_PARAM = re.compile(
    r'[ \t]*([A-Za-z0-9_-]+)[ \t]*=[ \t]*(?:"([^"\\]*(?:\\.[^"\\]*)*)"|([^,\s"]*))[ \t]*(?:,|\Z)',
    re.S,
)


def _parse_cavage(raw: str) -> dict[str, str]:
    """`keyId="...",algorithm="...",headers="...",signature="..."` (draft-cavage-12
    §2.1): quoted values may hold commas; names are matched case-insensitively."""
    params: dict[str, str] = {}
    pos, raw = 0, raw.strip(" \t")
    while pos < len(raw):
        m = _CAVAGE_PARAM.match(raw, pos)
        if not m or m.end() == pos:
            raise MalformedSignature("Signature header is not a list of name=value")
        name = m.group(1).lower()
        if name in params:
            raise MalformedSignature(f"duplicate {name!r} in Signature header")
        quoted = m.group(2)
        if quoted is None:
            params[name] = m.group(3)
        else:
            params[name] = re.sub(r"\\(.)", r"\1", quoted, flags=re.S) if "\\" in quoted else quoted
        pos = m.end()
    return params


def _prepare_cavage(
    method: str,
    path_qs: str,
    idx: Idx,
    body: bytes,
    max_skew: int,
    now: float,
    has_body: bool,
    raw: str,
) -> _Prepared:
    params = _parse_cavage(raw)
    key_id = params.get("keyid")
    if not key_id:
        raise MalformedSignature("Signature header has no keyId")
    if not params.get("signature"):
        raise MalformedSignature("Signature header has no signature")
    sig = _b64decode(params["signature"], "signature")
    # Fediverse usage: hs2019 means "look at the key", and an RSA key then
    # means PKCS#1 v1.5 + SHA-256 (Mastodon, Pleroma, Misskey all do this);
    # the draft's registry names RSASSA-PSS/SHA-512, which we also accept.
    algorithm = params.get("algorithm", "hs2019").lower()
    if algorithm == "rsa-sha256":
        rsa_algs: tuple[str, ...] = (ALG_RSA_V15,)
    elif algorithm == "hs2019":
        rsa_algs = (ALG_RSA_V15, ALG_RSA_PSS)
    else:
        raise MalformedSignature(f"unsupported signature algorithm {algorithm!r}")

    created = _int_param(params["created"], "created") if "created" in params else None
    expires = _int_param(params["expires"], "expires") if "expires" in params else None
    # draft-cavage-12 §2.1.6 defaults `headers` to "(created)"; drafts up to -10
    # and Mastodon default to "date". Use whichever the signer can have meant.
    default = "(created)" if created is not None else "date"
    names = params.get("headers", default).lower().split()
    if not names:
        raise MalformedSignature("Signature covers no headers")
    if "date" not in names and "(created)" not in names:
        raise MalformedSignature("signature must cover date or (created)")
    if "(request-target)" not in names and "digest" not in names:
        raise MalformedSignature("signature must cover (request-target) or digest")
    if method in ("GET", "HEAD") and "host" not in names:
        raise MalformedSignature("signature must cover host on GET")
    if has_body and "digest" not in names:
        raise MalformedSignature("signature must cover digest on requests with a body")

    def signing_string(target: str) -> bytes:
        pseudo = {"(request-target)": f"{method.lower()} {target}"}
        pseudo |= {f"({p})": params[p] for p in ("created", "expires") if p in params}
        lines = []
        for name in names:
            value = pseudo.get(name) if name.startswith("(") else _field_value(idx, name)
            if value is None:
                raise MalformedSignature(f"signed header {name!r} is missing or unknown")
            lines.append(f"{name}: {value}")
        return "\n".join(lines).encode("utf-8", "surrogateescape")

    messages = (signing_string(path_qs),)
    if "?" in path_qs and "(request-target)" in names:
        # Mastodon used to leave the query out of (request-target) and still
        # accepts that form (app/lib/signed_request.rb); so do we.
        messages += (signing_string(path_qs.partition("?")[0]),)

    if "(created)" in names:  # then `created` is set: its line was built above
        _check_window(_int_param(created, "created"), now, max_skew, "created", expires)
    if "date" in names:
        created = _http_date(_field_value(idx, "date") or "")
        _check_window(created, now, max_skew, "Date", expires)
    if "digest" in names:
        _check_digests("Digest", _field_value(idx, "digest") or "", body)

    assert created is not None  # date or (created) is covered, checked above
    return _Prepared(
        scheme="cavage",
        key_id=key_id,
        messages=messages,
        sig=sig,
        algs_for=lambda k: (ALG_ED25519,) if isinstance(k, ed25519.Ed25519PublicKey) else rsa_algs,
        created=created,
    )


def _prepare_rfc9421(
    method: str,
    path_qs: str,
    idx: Idx,
    body: bytes,
    max_skew: int,
    now: float,
    scheme: str,
    has_body: bool,
) -> _Prepared:
    raw_input = _field_value(idx, "signature-input") or ""
    inputs = _SF(raw_input).dictionary()
    sigs = _SF(_field_value(idx, "signature") or "").dictionary()
    # Several signatures may be present (RFC 9421 §4.3); use the first one we
    # can handle, so a proxy's extra signature does not get in the way.
    chosen = None
    for label, (members, params, span) in inputs.items():
        alg = params.get("alg")
        if isinstance(members, list) and label in sigs and (alg is None or alg in _RFC9421_ALGS):
            chosen = (label, members, params, span)
            break
    if chosen is None:
        raise MalformedSignature("no usable signature in Signature-Input")
    label, members, params, span = chosen
    sig = sigs[label][0]
    if not isinstance(sig, bytes):
        raise MalformedSignature("Signature value must be a byte sequence")
    key_id = params.get("keyid")
    if not isinstance(key_id, str) or not key_id:
        raise MalformedSignature("signature has no keyid")
    if "created" not in params:
        raise MalformedSignature("signature has no created parameter")
    created = _int_param(params["created"], "created")
    expires = _int_param(params["expires"], "expires") if "expires" in params else None

    names: list[str] = []
    for item, item_params in members:
        if not isinstance(item, str):
            raise MalformedSignature("covered components must be strings")
        if item_params:
            raise MalformedSignature(f"unsupported component parameters on {item!r}")
        if item in names:
            raise MalformedSignature(f"component {item!r} is covered twice")
        names.append(item)
    if "@method" not in names:
        raise MalformedSignature("signature must cover @method")
    if "@target-uri" not in names and not (
        "@authority" in names and ("@path" in names or "@request-target" in names)
    ):
        raise MalformedSignature("signature must cover @target-uri (or @authority and @path)")
    if has_body and "content-digest" not in names:
        raise MalformedSignature("signature must cover content-digest on requests with a body")

    # Derived components, RFC 9421 §2.2; @query is a lone "?" when there is none.
    path, _, query = path_qs.partition("?")
    scheme = scheme.lower()
    derived = {"@method": method, "@scheme": scheme, "@path": path or "/", "@query": "?" + query}
    derived["@request-target"] = path_qs
    if host := _field_value(idx, "host"):
        derived["@authority"] = _authority(host, scheme)
        derived["@target-uri"] = f"{scheme}://{derived['@authority']}{path_qs}"
    lines = []
    for name in names:
        value = derived.get(name) if name.startswith("@") else _field_value(idx, name.lower())
        if value is None:
            raise MalformedSignature(f"covered component {name!r} is missing or unsupported")
        lines.append(f"{_sf_string(name)}: {value}")
    # RFC 9421 §2.5: the last line carries the parameters exactly as received.
    lines.append(f'"@signature-params": {raw_input[span[0] : span[1]]}')

    _check_window(created, now, max_skew, "created", expires)
    if "date" in names:
        _check_window(_http_date(_field_value(idx, "date") or ""), now, max_skew, "Date", None)
    if "content-digest" in names:
        _check_digests("Content-Digest", _field_value(idx, "content-digest") or "", body)

    alg = params.get("alg")

    def algs_for(key: Any) -> tuple[str, ...]:
        if alg is not None:
            return (alg,)
        # No `alg`: RFC 9421 §3.2 lets the key decide. An RSA key may be used
        # with either RSA algorithm, so try PKCS#1 v1.5 (the fediverse's) first.
        rsa_algs = (ALG_RSA_V15, ALG_RSA_PSS)
        return (ALG_ED25519,) if isinstance(key, ed25519.Ed25519PublicKey) else rsa_algs

    return _Prepared(
        scheme="rfc9421",
        key_id=key_id,
        messages=("\n".join(lines).encode("utf-8", "surrogateescape"),),
        sig=sig,
        algs_for=algs_for,
        created=created,
    )


def _sf_string(value: str) -> str:
    if not all(0x20 <= ord(c) <= 0x7E for c in value):
        raise ValueError("structured-field strings are printable ASCII only")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN = re.compile(r"[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*")
# Integers have at most 15 digits, decimals 12.3 (RFC 8941 §3.3.1-2).
_NUMBER = re.compile(r"-?(?:[0-9]{1,12}\.[0-9]{1,3}|[0-9]{1,15})(?![0-9.])", re.ASCII)
_STRING = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\\"])*"')
_BYTES = re.compile(r":[A-Za-z0-9+/=]*:")
_BOOLEAN = re.compile(r"\?[01]")

Params = dict[str, Any]


class _SF:
    """A small RFC 8941 parser: dictionaries, inner lists, items, parameters.

    Dictionary members keep the (start, end) span of their raw text, because
    `@signature-params` must repeat it byte for byte (RFC 9421 §2.3)."""

    def __init__(self, text: str) -> None:
        self.s, self.i = text, 0

    def fail(self, why: str) -> MalformedSignature:
        return MalformedSignature(f"malformed structured field: {why} at {self.i}")

    def peek(self) -> str:
        return self.s[self.i : self.i + 1]

    def skip(self, chars: str) -> None:
        while self.peek() and self.peek() in chars:
            self.i += 1

    def match(self, pattern: re.Pattern[str], what: str) -> str:
        m = pattern.match(self.s, self.i)
        if not m:
            raise self.fail(f"expected {what}")
        self.i = m.end()
        return m.group(0)

    def dictionary(self) -> dict[str, tuple[Any, Params, tuple[int, int]]]:
        out: dict[str, tuple[Any, Params, tuple[int, int]]] = {}
        self.skip(" \t")
        while self.peek():
            key = self.match(_KEY, "a key")
            start = self.i + (self.peek() == "=")
            if self.peek() == "=":
                self.i += 1
                value, params = self.item_or_inner_list()
            else:
                value, params = True, self.parameters()
            out[key] = (value, params, (start, self.i))  # RFC 8941: the last one wins
            self.skip(" \t")
            if self.peek():
                if self.peek() != ",":
                    raise self.fail("expected ','")
                self.i += 1
                self.skip(" \t")
                if not self.peek():
                    raise self.fail("trailing ','")
        return out

    def item_or_inner_list(self) -> tuple[Any, Params]:
        if self.peek() != "(":
            return self.bare_item(), self.parameters()
        self.i += 1
        items: list[tuple[Any, Params]] = []
        while True:
            self.skip(" ")
            if self.peek() == ")":
                self.i += 1
                return items, self.parameters()
            items.append((self.bare_item(), self.parameters()))
            if self.peek() not in (" ", ")"):
                raise self.fail("expected ' ' or ')' in inner list")

    def parameters(self) -> Params:
        params: Params = {}
        while self.peek() == ";":
            self.i += 1
            self.skip(" ")
            key = self.match(_KEY, "a key")
            params[key] = True
            if self.peek() == "=":
                self.i += 1
                params[key] = self.bare_item()
        return params

    def bare_item(self) -> Any:
        c = self.peek()
        if c == '"':
            raw = self.match(_STRING, "a string")
            return re.sub(r"\\([\\\"])", r"\1", raw[1:-1])
        if c == ":":
            return _b64decode(self.match(_BYTES, "a byte sequence")[1:-1], "byte sequence")
        if c == "?":
            return self.match(_BOOLEAN, "a boolean") == "?1"
        if c == "-" or c.isdigit():
            number = self.match(_NUMBER, "a number")
            return float(number) if "." in number else int(number)
        return self.match(_TOKEN, "an item")
