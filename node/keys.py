"""Key material: generation, files on disk (0600) and PEM helpers.

The node has an RSA-2048 key (HTTP signatures, the ActivityPub norm) and an
Ed25519 key (clearing statements, device credentials); every local actor
has its own RSA key, kept in the database.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

RSA_FILE = "node-rsa.pem"
ED25519_FILE = "node-ed25519.pem"


@dataclass(frozen=True)
class KeyPair:
    private_pem: str
    public_pem: str


def generate_rsa() -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return KeyPair(
        private_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        public_pem=key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
    )


def generate_ed25519() -> KeyPair:
    key = ed25519.Ed25519PrivateKey.generate()
    return KeyPair(
        private_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        public_pem=key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
    )


def write_private(path: Path, pem: str) -> None:
    """Create a key file readable by its owner only, never briefly world-readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(pem)
    path.chmod(0o600)


def ensure_node_keys(keys_dir: Path) -> dict[str, Path]:
    """Create the node's RSA and Ed25519 keys if missing; never overwrite."""
    made = {}
    for name, gen in ((RSA_FILE, generate_rsa), (ED25519_FILE, generate_ed25519)):
        path = keys_dir / name
        if not path.exists():
            pair = gen()
            write_private(path, pair.private_pem)
            path.with_suffix(".pub").write_text(pair.public_pem)
        made[name] = path
    return made


def load_private(path: Path):
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def public_pem_of(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
