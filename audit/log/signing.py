"""Signed checkpoints (signed tree heads), Ed25519.

No Django: the standalone verifier checks signatures with this module. The signed text is

    steward.audit/v1
    <tree size>
    <root hash, base64>
    <time, RFC 3339 UTC>

and the key id is the first 8 bytes (hex) of SHA-256 of the raw public key.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ORIGIN = "steward.audit/v1"


@dataclass(frozen=True)
class SignedCheckpoint:
    tree_size: int
    root_hash: str  # hex
    time: str  # RFC 3339, UTC, e.g. 2026-11-22T07:00:00.000000Z
    key_id: str
    signature: str  # base64

    def to_dict(self) -> dict[str, object]:
        return {
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "time": self.time,
            "key_id": self.key_id,
            "signature": self.signature,
        }


def checkpoint_text(tree_size: int, root_hash_hex: str, time: str) -> bytes:
    root_b64 = base64.b64encode(bytes.fromhex(root_hash_hex)).decode()
    return f"{ORIGIN}\n{tree_size}\n{root_b64}\n{time}\n".encode()


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_private_key(pem: str | bytes) -> Ed25519PrivateKey:
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the audit signing key must be an Ed25519 private key (PEM)")
    return key


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the audit public key must be an Ed25519 public key (PEM)")
    return key


def public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def generate_private_pem() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def sign(private_key: Ed25519PrivateKey, tree_size: int, root_hash_hex: str, time: str) -> SignedCheckpoint:
    signature = private_key.sign(checkpoint_text(tree_size, root_hash_hex, time))
    return SignedCheckpoint(
        tree_size=tree_size,
        root_hash=root_hash_hex,
        time=time,
        key_id=key_id(private_key.public_key()),
        signature=base64.b64encode(signature).decode(),
    )


def verify(public_key: Ed25519PublicKey, checkpoint: SignedCheckpoint) -> bool:
    if checkpoint.key_id != key_id(public_key):
        return False
    try:
        public_key.verify(
            base64.b64decode(checkpoint.signature, validate=True),
            checkpoint_text(checkpoint.tree_size, checkpoint.root_hash, checkpoint.time),
        )
    except (InvalidSignature, ValueError):
        return False
    return True


# Documents (the manifests of evidence bundles) are signed over a distinct prefix, so that no
# signature on a document can ever pass for a checkpoint's, or the other way round.
DOCUMENT_ORIGIN = b"steward.evidence/v1\n"


def sign_document(private_key: Ed25519PrivateKey, data: bytes) -> str:
    """A base64 Ed25519 signature over a document's exact bytes."""
    return base64.b64encode(private_key.sign(DOCUMENT_ORIGIN + data)).decode()


def verify_document(public_key: Ed25519PublicKey, data: bytes, signature: str) -> bool:
    try:
        public_key.verify(base64.b64decode(signature, validate=True), DOCUMENT_ORIGIN + data)
    except (InvalidSignature, ValueError):
        return False
    return True
