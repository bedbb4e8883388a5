"""TokenVault: Fernet encryption of tokens at rest, with key rotation through MultiFernet."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from bot.secrets import Secret
from bot.store.accounts import AccountStore


class VaultError(Exception):
    """A stored token could not be decrypted with any configured key."""


class TokenVault:
    """The first key encrypts; every key decrypts."""

    def __init__(self, keys: Sequence[Secret | str]) -> None:
        if not keys:
            raise ValueError("TokenVault needs at least one key")
        raw = [(k.reveal() if isinstance(k, Secret) else k).encode() for k in keys]
        self._fernet = MultiFernet([Fernet(k) for k in raw])
        self._raw = [base64.urlsafe_b64decode(k) for k in raw]
        self.key_count = len(keys)

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def encrypt(self, plaintext: str | Secret) -> bytes:
        value = plaintext.reveal() if isinstance(plaintext, Secret) else plaintext
        return self._fernet.encrypt(value.encode())

    def decrypt(self, ciphertext: bytes) -> Secret:
        try:
            return Secret(self._fernet.decrypt(ciphertext).decode())
        except InvalidToken as exc:
            raise VaultError("a stored token cannot be decrypted with TOKEN_ENCRYPTION_KEY") from exc

    def __repr__(self) -> str:
        return f"TokenVault(keys={self.key_count})"

    def signing_keys(self, purpose: str) -> list[bytes]:
        """HMAC keys for `purpose`, one derived from each configured key (the first signs, all verify), so a
        signature never reuses the encryption key itself and rotating TOKEN_ENCRYPTION_KEY rotates these too."""
        label = f"mutebot signing key: {purpose}".encode()
        return [hmac.new(key, label, hashlib.sha256).digest() for key in self._raw]

    async def rotate(self, store: AccountStore) -> int:
        """Re-encrypt every stored secret under the first key; returns how many values changed. One that no key
        decrypts stops it before anything is written (the store's one transaction rolls back)."""

        def rotate(value: bytes) -> bytes:
            try:
                return self._fernet.rotate(value)
            except InvalidToken as exc:
                raise VaultError(
                    "a stored token cannot be decrypted with any of its keys, so rotate-keys re-encrypted nothing. "
                    "Put the key that encrypted it back after the first key and run rotate-keys again; if that key "
                    "is lost, run rotate-keys again once the members whose links it locked have run /link again or "
                    "/unlink (until then they are asked to relink)"
                ) from exc

        return await store.reencrypt(rotate)
