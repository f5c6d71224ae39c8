"""The store's cryptography, as pure functions: AES-256-GCM sealing, associated data, and scrypt.

Only `launcher.store` imports this module, and only inside the functions that encrypt or decrypt, so listing
secrets never pays for importing `cryptography`.

Sealed format: a fresh random 96-bit nonce followed by AES-GCM's ciphertext and 128-bit tag. With random nonces
AES-GCM stays safe for about 2**32 encryptions under one key, far beyond what a personal store ever writes.

Associated data (authenticated, not stored) binds every ciphertext to where it belongs, so it only decrypts
there: a fixed tag and the format version, the store's random id, then the purpose and its context. A secret's
value is bound to its name and version (copying a ciphertext to another name, another version or another store
fails authentication); the wrapped data key is bound to the kind of key that wraps it.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import asdict, dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

FORMAT = 1  # bump when the sealed layout or the associated data change
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96 bits: GCM's native nonce size
TAG_BYTES = 16
_AD_TAG = b"launch-store\x00"


class AuthenticationFailed(Exception):
    """A sealed blob did not decrypt: it was modified, moved, or the key is wrong. Carries no data."""


def new_key() -> bytes:
    """A fresh random 256-bit key (a data key, or the key in a key file)."""
    return os.urandom(KEY_BYTES)


def seal(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """Encrypt and authenticate `plaintext` under `key` with a fresh random nonce: nonce || ciphertext || tag."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def unseal(key: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    """The plaintext of `sealed`, or AuthenticationFailed if any byte (or the key, or the context) differs."""
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        raise AuthenticationFailed
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated_data)
    except InvalidTag:
        raise AuthenticationFailed from None


def secret_ad(store_id: bytes, name: str, version: int) -> bytes:
    """Associated data of a secret's value. The name comes last, so the encoding is unambiguous."""
    return _AD_TAG + struct.pack(">H", FORMAT) + store_id + b"secret\x00" + struct.pack(">Q", version) + name.encode()


def data_key_ad(store_id: bytes, kind: str) -> bytes:
    """Associated data of the wrapped data key: the store and the kind of key-encryption key ("keyfile"...)."""
    return _AD_TAG + struct.pack(">H", FORMAT) + store_id + b"data-key\x00" + kind.encode()


@dataclass(frozen=True)
class ScryptParams:
    """Parameters that turn a passphrase into a key-encryption key; stored with the store so they can change.

    The defaults (n=2**17, r=8, p=1: 128 MiB of memory, about half a second here) follow the scrypt paper's
    interactive-login guidance raised for today's machines; the salt is 16 random bytes per passphrase.
    """

    salt: bytes
    n: int = 2**17
    r: int = 8
    p: int = 1

    @classmethod
    def fresh(cls) -> ScryptParams:
        return cls(salt=os.urandom(16))

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "salt": self.salt.hex()}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ScryptParams:
        data = json.loads(text)
        return cls(salt=bytes.fromhex(data["salt"]), n=int(data["n"]), r=int(data["r"]), p=int(data["p"]))

    def derive(self, passphrase: bytes) -> bytes:
        """The 256-bit key for `passphrase` (slow on purpose: this is what makes guessing expensive)."""
        return Scrypt(salt=self.salt, length=KEY_BYTES, n=self.n, r=self.r, p=self.p).derive(passphrase)
