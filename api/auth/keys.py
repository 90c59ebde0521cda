"""The server's RS256 signing key: generated on first start, kept in the data directory."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_FILE = "jwt-signing-key.pem"


@dataclass(frozen=True)
class SigningKey:
    """A private RSA key with its RFC 7638 thumbprint as ``kid``."""

    kid: str
    private_key: rsa.RSAPrivateKey

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, Any]:
        return {**_rsa_jwk_members(self.public_key), "kid": self.kid, "use": "sig", "alg": "RS256"}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk()]}


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _rsa_jwk_members(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    numbers = public_key.public_numbers()
    return {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}


def _thumbprint(public_key: rsa.RSAPublicKey) -> str:
    canonical = json.dumps(_rsa_jwk_members(public_key), separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def load_or_create_signing_key(data_dir: Path, key_file: Path | None = None) -> SigningKey:
    """Read the key from `key_file` if given (it must exist: every node of a cluster signs
    with the same one), else from ``data_dir``, created (mode 0600) on first start."""
    if key_file is not None and not key_file.exists():
        raise ValueError(f"JWT_SIGNING_KEY_FILE {key_file} does not exist")
    path = key_file if key_file is not None else data_dir / KEY_FILE
    if path.exists():
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise ValueError(f"{path} does not hold an RSA private key")
        return SigningKey(kid=_thumbprint(loaded.public_key()), private_key=loaded)
    data_dir.mkdir(parents=True, exist_ok=True)
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Write then rename so a crash never leaves a half-written key behind.
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return SigningKey(kid=_thumbprint(private_key.public_key()), private_key=private_key)
