"""RFC 8291 encryption against the RFC's own example, VAPID tokens, and push URL checks."""

from __future__ import annotations

import time

import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tidings.push.subscription import address_is_public, push_url_problem
from tidings.push.webpush import Vapid, b64url_decode, encrypt, load_p256_public, valid_subscription_keys

from .pushtools import Device, b64u, unb64u


def test_encryption_matches_the_example_of_rfc_8291_section_5() -> None:
    sender = ec.derive_private_key(
        int.from_bytes(unb64u("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"), "big"), ec.SECP256R1()
    )
    body = encrypt(
        b"When I grow up, I want to be a watermelon",
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
        "BTBZMqHH6r4Tts7J_aSIgg",
        salt=unb64u("DGv6ra1nlYgDCS1FRnbzlw"),
        private_key=sender,
    )
    assert b64u(body) == (
        "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8w"
        "EqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
    )


def test_each_message_has_a_fresh_salt_and_key_and_decrypts() -> None:
    device = Device()
    first = encrypt(b'{"a":1}', device.keys["p256dh"], device.keys["auth"])
    second = encrypt(b'{"a":1}', device.keys["p256dh"], device.keys["auth"])
    assert first[:16] != second[:16] and first[21:86] != second[21:86]
    assert device.decrypt(first) == device.decrypt(second) == b'{"a":1}'


def test_subscription_keys_must_be_a_curve_point_and_16_octets() -> None:
    device = Device()
    assert valid_subscription_keys(device.keys["p256dh"], device.keys["auth"])
    assert not valid_subscription_keys(device.keys["p256dh"], b64u(b"short"))
    assert not valid_subscription_keys(b64u(b"\x04" + b"\x01" * 64), device.keys["auth"])  # not on the curve
    assert not valid_subscription_keys("!!!", device.keys["auth"])


def test_vapid_header_is_a_verifiable_es256_jwt_for_the_origin() -> None:
    vapid = Vapid(Vapid.generate_pem(), "mailto:postmaster@example.com")
    value = vapid.authorization("https://push.example.net:8443/send/abc?x=1", now=1_000_000)
    assert value.startswith("vapid t=")
    token = value.split("t=", 1)[1].split(",", 1)[0]
    key = value.split("k=", 1)[1]
    assert key == vapid.public_key and len(b64url_decode(key)) == 65
    header, payload, signature = token.split(".")
    assert orjson.loads(b64url_decode(header)) == {"typ": "JWT", "alg": "ES256"}
    claims = orjson.loads(b64url_decode(payload))
    assert claims["aud"] == "https://push.example.net:8443"
    assert claims["sub"] == "mailto:postmaster@example.com"
    assert 0 < claims["exp"] - 1_000_000 <= 24 * 3600  # RFC 8292 §2
    raw = b64url_decode(signature)
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    load_p256_public(b64url_decode(key)).verify(der, f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    # The token is reused for the same origin, not re-signed per push.
    assert vapid.authorization("https://push.example.net:8443/other", now=1_000_100) == value
    assert vapid.authorization("https://other.example/", now=time.time()) != value


def _resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> list[str]:
        if host in table:
            return table[host]
        try:
            address_is_public(host)
            return [host]
        except ValueError:
            raise OSError("no such host") from None

    return resolve


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://push.example.net/abc", None),
        ("http://push.example.net/abc", "https"),
        ("ftp://push.example.net/abc", "https"),
        ("https://user:pw@push.example.net/abc", "credentials"),
        ("https://127.0.0.1/abc", "non-public"),
        ("https://[::1]/abc", "non-public"),
        ("https://10.1.2.3/abc", "non-public"),
        ("https://192.168.1.1/abc", "non-public"),
        ("https://169.254.169.254/latest", "non-public"),
        ("https://[::ffff:127.0.0.1]/x", "non-public"),
        ("https://inside.example.net/abc", "non-public"),
        ("https://mail.example.com/abc", "this server"),
        ("https://localhost/abc", "this server"),
        ("https://nowhere.invalid/abc", "resolve"),
        ("https:///abc", "no host"),
        ("https://push.example.net:99999/", "parse"),
    ],
)
def test_push_urls_must_be_https_and_public(url: str, problem: str | None) -> None:
    resolve = _resolver({"push.example.net": ["93.184.215.14"], "inside.example.net": ["93.184.215.14", "10.0.0.5"]})
    found = push_url_problem(url, allow_insecure=False, server_hosts=frozenset({"mail.example.com"}), resolve=resolve)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found, found


def test_insecure_mode_allows_plain_http_to_loopback_only_for_development() -> None:
    def resolve(host: str, port: int) -> list[str]:
        raise AssertionError("not consulted")

    assert (
        push_url_problem("http://127.0.0.1:9/x", allow_insecure=True, server_hosts=frozenset(), resolve=resolve) is None
    )
    assert push_url_problem("ftp://127.0.0.1/x", allow_insecure=True, server_hosts=frozenset(), resolve=resolve)
