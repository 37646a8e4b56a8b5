"""Web Push message encryption (RFC 8291, aes128gcm of RFC 8188) and VAPID (RFC 8292).

Both are small enough to write against `cryptography` directly. Keys on the wire are base64url without
padding (RFC 8291 §3.2, RFC 8292 §3.2); public keys are uncompressed P-256 points (65 octets).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from urllib.parse import urlsplit

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

RECORD_SIZE = 4096  # RFC 8291 §4: one record; 4096 lets a push service accept up to 3993 octets
MAX_PLAINTEXT = RECORD_SIZE - 16 - 1 - 86  # tag, delimiter and the header (RFC 8291 §4)


def b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    # HKDF-SHA-256 (RFC 5869) with one block of output, which is all RFC 8291 ever needs.
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:length]


def public_key_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def load_p256_public(raw: bytes) -> ec.EllipticCurvePublicKey:
    """An uncompressed P-256 point; ValueError when it is not one (or not on the curve)."""
    if len(raw) != 65 or raw[0] != 4:
        raise ValueError("not an uncompressed P-256 point")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)


def encrypt(
    plaintext: bytes,
    p256dh: str,
    auth: str,
    *,
    salt: bytes | None = None,
    private_key: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """The aes128gcm body of a push message for a subscription's keys (RFC 8291 §3–4).

    `salt` and `private_key` are fresh per message; they are parameters only for the test vectors of
    RFC 8291 §5.
    """
    if len(plaintext) > MAX_PLAINTEXT:
        raise ValueError("push message too large")
    ua_public_raw = b64url_decode(p256dh)
    auth_secret = b64url_decode(auth)
    ua_public = load_p256_public(ua_public_raw)
    as_private = private_key or ec.generate_private_key(ec.SECP256R1())
    as_public_raw = public_key_bytes(as_private.public_key())
    salt = salt if salt is not None else os.urandom(16)
    # §3.3: ecdh_secret = ECDH(as_private, ua_public); §3.4: combine with the auth secret.
    ecdh_secret = as_private.exchange(ec.ECDH(), ua_public)
    key_info = b"WebPush: info\x00" + ua_public_raw + as_public_raw
    ikm = _hkdf(auth_secret, ecdh_secret, key_info, 32)
    # RFC 8188 §2.2–2.3: content-encryption key and nonce from the salt (one record: SEQ = 0).
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    # RFC 8188 §2: the last (here, only) record ends with the delimiter 0x02, then no padding.
    ciphertext = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)
    # RFC 8188 §2.1 header: salt(16) | rs(4) | idlen(1) | keyid; RFC 8291 §4: keyid = as_public.
    header = salt + RECORD_SIZE.to_bytes(4, "big") + bytes([len(as_public_raw)]) + as_public_raw
    return header + ciphertext


def valid_subscription_keys(p256dh: str, auth: str) -> bool:
    """RFC 8291 §2: p256dh is a P-256 point, auth a 16-octet secret (both base64url)."""
    try:
        load_p256_public(b64url_decode(p256dh))
        return len(b64url_decode(auth)) == 16
    except (ValueError, TypeError):
        return False


class Vapid:
    """The server's VAPID key (RFC 8292): signs a JWT per push-service origin, reused for hours."""

    TOKEN_LIFETIME = 12 * 3600  # §2: "exp" MUST NOT be more than 24 hours ahead

    def __init__(self, private_pem: bytes, subject: str) -> None:
        key = serialization.load_pem_private_key(private_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("the VAPID key must be a P-256 key")
        self.private_key = key
        self.public_key = b64url(public_key_bytes(key.public_key()))
        self.subject = subject
        self._tokens: dict[str, tuple[str, float]] = {}

    @staticmethod
    def generate_pem() -> bytes:
        key = ec.generate_private_key(ec.SECP256R1())
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def authorization(self, endpoint: str, now: float | None = None) -> str:
        """The Authorization header value for a push to `endpoint` (RFC 8292 §3: "vapid t=..., k=...")."""
        now = time.time() if now is None else now
        audience = _origin(endpoint)
        cached = self._tokens.get(audience)
        if cached is None or cached[1] - now < 3600:
            expires = int(now) + self.TOKEN_LIFETIME
            cached = (self._sign({"aud": audience, "exp": expires, "sub": self.subject}), expires)
            self._tokens[audience] = cached
        return f"vapid t={cached[0]}, k={self.public_key}"

    def _sign(self, claims: dict[str, object]) -> str:
        # RFC 8292 §2: a JWS (RFC 7515) with ES256; the signature is r || s, 32 octets each (RFC 7518 §3.4).
        header = b64url(orjson.dumps({"typ": "JWT", "alg": "ES256"}))
        payload = b64url(orjson.dumps(claims))
        signing_input = f"{header}.{payload}".encode()
        r, s = decode_dss_signature(self.private_key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return f"{header}.{payload}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _origin(url: str) -> str:
    """RFC 8292 §2: "aud" is the origin of the push resource (scheme, host and any non-default port)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = {"https": 443, "http": 80}.get(parts.scheme)
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{host}{port}"
