"""Signed clearing documents: canonical JSON (RFC 8785) and Ed25519 signatures.

Statements and settlements are JSON documents that any node in the network
can check without trusting the channel they came over: the signature covers
the RFC 8785 canonical form of the document without its `signature` member,
made with the issuing node's Ed25519 key (`DATA/keys/node-ed25519.pem`),
whose public half the node publishes on its actor (`/actor`) as a Multikey
in `assertionMethod` (W3C Controlled Identifiers, Multikey; FEP-521a).

All key and signature code of the clearing protocol lives here, with a tiny
public surface: `sign`, `verify`, `doc_hash`, `multikey_of`, `key_from_multibase`.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from node.config import Settings
from node.keys import ED25519_FILE

SIGNATURE_TYPE = "nycmg:Ed25519Signature2026"
KEY_FRAGMENT = "#clearing-key"
_ED25519_MULTICODEC = b"\xed\x01"  # multicodec ed25519-pub, varint-encoded
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
MAX_DOC_BYTES = 1_000_000  # a statement or settlement larger than this is refused unread


class SignatureInvalid(ValueError):
    """A clearing document whose signature does not match its content or key."""


def canonical(doc: dict[str, Any]) -> bytes:
    """RFC 8785 bytes of `doc` without its signature (what is signed and hashed)."""
    body = {k: v for k, v in doc.items() if k != "signature"}
    try:
        data = rfc8785.dumps(body)
    except rfc8785.CanonicalizationError as e:  # a number JSON cannot carry exactly
        raise SignatureInvalid(f"the document has no canonical form: {e}") from None
    if len(data) > MAX_DOC_BYTES:
        raise SignatureInvalid("the document is too large")
    return data


def doc_hash(doc: dict[str, Any]) -> str:
    """`sha256:<hex>` of the canonical form: the id statements chain by."""
    return "sha256:" + hashlib.sha256(canonical(doc)).hexdigest()


def _b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def _b58decode(text: str) -> bytes:
    n = 0
    for ch in text:
        i = _B58.find(ch)
        if i < 0:
            raise ValueError("not base58btc")
        n = n * 58 + i
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def multibase_of(public: ed25519.Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "z" + _b58encode(_ED25519_MULTICODEC + raw)


def key_from_multibase(value: str) -> ed25519.Ed25519PublicKey:
    """An Ed25519 public key from a Multikey `publicKeyMultibase` (ValueError otherwise)."""
    if not isinstance(value, str) or not value.startswith("z") or len(value) > 100:
        raise ValueError("not a base58btc multibase value")
    raw = _b58decode(value[1:])
    if not raw.startswith(_ED25519_MULTICODEC) or len(raw) != 34:
        raise ValueError("not an Ed25519 Multikey")
    return ed25519.Ed25519PublicKey.from_public_bytes(raw[2:])


def node_private_key(settings: Settings) -> ed25519.Ed25519PrivateKey:
    key = serialization.load_pem_private_key(
        (settings.keys_dir / ED25519_FILE).read_bytes(), password=None
    )
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError("the node's clearing key is not Ed25519")
    return key


def key_id(node_actor_uri: str) -> str:
    return node_actor_uri + KEY_FRAGMENT


def multikey_of(settings: Settings, node_actor_uri: str) -> dict[str, Any]:
    """The node's clearing key as published on its actor."""
    return {
        "id": key_id(node_actor_uri),
        "type": "Multikey",
        "controller": node_actor_uri,
        "publicKeyMultibase": multibase_of(node_private_key(settings).public_key()),
    }


def sign(
    doc: dict[str, Any], private: ed25519.Ed25519PrivateKey, node_actor_uri: str
) -> dict[str, Any]:
    """`doc` with a `signature` member over its canonical form."""
    value = private.sign(canonical(doc))
    return {
        **{k: v for k, v in doc.items() if k != "signature"},
        "signature": {
            "type": SIGNATURE_TYPE,
            "creator": key_id(node_actor_uri),
            "signatureValue": base64.urlsafe_b64encode(value).decode().rstrip("="),
        },
    }


def signer_of(doc: dict[str, Any]) -> str:
    """The key id a document claims to be signed with (not yet verified)."""
    sig = doc.get("signature")
    creator = sig.get("creator") if isinstance(sig, dict) else None
    if not isinstance(creator, str) or not creator.endswith(KEY_FRAGMENT):
        raise SignatureInvalid("the document carries no clearing signature")
    return creator


def verify(doc: dict[str, Any], public: ed25519.Ed25519PublicKey) -> None:
    """Raise SignatureInvalid unless `doc`'s signature is `public`'s over its canonical form."""
    sig = doc.get("signature")
    if not isinstance(sig, dict) or sig.get("type") != SIGNATURE_TYPE:
        raise SignatureInvalid("the document carries no clearing signature")
    raw = sig.get("signatureValue")
    if not isinstance(raw, str) or len(raw) > 200:
        raise SignatureInvalid("the signature value is malformed")
    try:
        value = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        public.verify(value, canonical(doc))
    except (ValueError, InvalidSignature):
        raise SignatureInvalid("the signature does not match the document") from None
