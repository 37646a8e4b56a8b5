"""Upload, download and Blob/copy (RFC 8620 §6) in process."""

from __future__ import annotations

import time
from urllib.parse import quote

import orjson
import pytest

from ..helpers import MAIL
from .conftest import Driver


def _account(driver: Driver, user: str | None = None) -> str:
    return str(orjson.loads(driver.send("GET", "/.well-known/jmap", user=user)[2])["primaryAccounts"][MAIL])


def _upload(driver: Driver, data: bytes, media_type: str = "text/plain", user: str | None = None) -> dict[str, str]:
    account = _account(driver, user)
    status, _, body = driver.send("POST", f"/jmap/upload/{account}/", data, {"Content-Type": media_type}, user=user)
    assert status == 201, body
    return dict(orjson.loads(body))


def test_upload_answers_account_blob_id_type_and_size(driver: Driver) -> None:
    out = _upload(driver, b"hello world", "text/plain; charset=utf-8")
    assert out == {"accountId": _account(driver), "blobId": out["blobId"], "type": "text/plain; charset=utf-8",
                   "size": 11}
    # Identical content has the same id.
    assert _upload(driver, b"hello world")["blobId"] == out["blobId"]


def test_upload_with_a_control_character_in_its_type_is_stored_as_octet_stream(driver: Driver) -> None:
    assert _upload(driver, b"x", "text/plain\x01")["type"] == "application/octet-stream"


def test_download_serves_the_type_and_name_from_the_url_with_caching_headers(driver: Driver) -> None:
    blob = _upload(driver, b"0123456789")["blobId"]
    account = _account(driver)
    name = "report 2024/ü.txt"
    status, headers, body = driver.send("GET", f"/jmap/download/{account}/{blob}/{quote(name, safe='')}",
                                        query="type=text%2Fcsv")
    assert status == 200 and body == b"0123456789"
    assert headers["content-type"] == "text/csv"
    assert "filename*=UTF-8''report%202024%2F%C3%BC.txt" in headers["content-disposition"]
    assert 'filename="report 2024/_.txt"' in headers["content-disposition"]
    assert "immutable" in headers["cache-control"] and "private" in headers["cache-control"]
    assert headers["etag"] == f'"{blob}"'
    status, _, body = driver.send("GET", f"/jmap/download/{account}/{blob}/x", headers={"If-None-Match": f'"{blob}"'})
    assert status == 304 and body == b""


def test_a_percent_sign_in_a_download_name_is_decoded_exactly_once(driver: Driver) -> None:
    blob = _upload(driver, b"x")["blobId"]
    _, headers, _ = driver.send("GET", f"/jmap/download/{_account(driver)}/{blob}/100%2541.txt")
    assert "filename*=UTF-8''100%2541.txt" in headers["content-disposition"]


@pytest.mark.parametrize("media_type", ["text/plain\r\nX-Evil: 1", "text/plain\x00", "nonsense"])
def test_download_with_an_unsafe_type_falls_back_to_octet_stream(driver: Driver, media_type: str) -> None:
    blob = _upload(driver, b"x")["blobId"]
    _, headers, _ = driver.send("GET", f"/jmap/download/{_account(driver)}/{blob}/x",
                                query="type=" + quote(media_type))
    assert headers["content-type"] == "application/octet-stream"
    assert "x-evil" not in headers


@pytest.mark.parametrize(
    ("range_header", "status", "body", "content_range"),
    [
        ("bytes=2-4", 206, b"234", "bytes 2-4/10"),
        ("bytes=7-", 206, b"789", "bytes 7-9/10"),
        ("bytes=-3", 206, b"789", "bytes 7-9/10"),
        ("bytes=5-100", 206, b"56789", "bytes 5-9/10"),
        ("bytes=0-9", 200, b"0123456789", None),
        ("bytes=-20", 200, b"0123456789", None),
        ("bytes=10-", 416, None, "bytes */10"),
        ("bytes=5-2", 416, None, "bytes */10"),
        ("bytes=-0", 416, None, "bytes */10"),
        ("bytes=0-1,4-5", 200, b"0123456789", None),
        ("lines=1-2", 200, b"0123456789", None),
        ("bytes=abc", 200, b"0123456789", None),
    ],
)
def test_download_range_requests(driver: Driver, range_header: str, status: int, body: bytes | None,
                                 content_range: str | None) -> None:
    blob = _upload(driver, b"0123456789")["blobId"]
    got_status, headers, got = driver.send("GET", f"/jmap/download/{_account(driver)}/{blob}/d",
                                           headers={"Range": range_header})
    assert got_status == status
    if body is not None:
        assert got == body and headers["content-length"] == str(len(body))
    assert headers.get("content-range") == content_range


def test_head_download_sends_headers_only(driver: Driver) -> None:
    blob = _upload(driver, b"0123456789")["blobId"]
    status, headers, body = driver.send("HEAD", f"/jmap/download/{_account(driver)}/{blob}/d")
    assert status == 200 and body == b"" and headers["content-length"] == "10"


def test_blobs_and_uploads_of_one_user_are_invisible_to_another(driver: Driver) -> None:
    blob = _upload(driver, b"alice's secret")["blobId"]
    alice_account, bob_account = _account(driver), _account(driver, driver.bob)
    # Bob may not download from alice's account, nor name alice's blob in his own.
    assert driver.send("GET", f"/jmap/download/{alice_account}/{blob}/x", user=driver.bob)[0] == 404
    assert driver.send("GET", f"/jmap/download/{bob_account}/{blob}/x", user=driver.bob)[0] == 404
    assert driver.send("POST", f"/jmap/upload/{alice_account}/", b"x", user=driver.bob)[0] == 404
    out = driver.calls([["Blob/copy", {"fromAccountId": alice_account, "accountId": bob_account,
                                       "blobIds": [blob]}, "c"]], user=driver.bob)
    assert out[0][1]["type"] == "fromAccountNotFound"


def test_unknown_blobs_and_accounts_are_404(driver: Driver) -> None:
    account = _account(driver)
    assert driver.send("GET", f"/jmap/download/{account}/B{'0' * 64}/x")[0] == 404
    assert driver.send("GET", f"/jmap/download/{account}/zzz/x")[0] == 404
    assert driver.send("GET", "/jmap/download/A999/B/x")[0] == 404
    assert driver.send("GET", "/jmap/download/short")[0] == 404
    assert driver.send("POST", "/jmap/upload/A999/", b"x")[0] == 404


def test_download_and_upload_need_credentials(driver: Driver) -> None:
    assert driver.send("GET", f"/jmap/download/{_account(driver)}/B/x", user=" ")[0] == 401
    assert driver.send("POST", f"/jmap/upload/{_account(driver)}/", b"x", user=" ")[0] == 401


def test_upload_over_maxSizeUpload_is_a_413_limit_problem(driver: Driver) -> None:
    account = _account(driver)
    for headers in ({}, {"Content-Length": "1001"}):
        status, out_headers, body = driver.send("POST", f"/jmap/upload/{account}/", b"x" * 1001, headers)
        problem = orjson.loads(body)
        assert status == 413 and out_headers["content-type"] == "application/problem+json"
        assert problem["type"] == "urn:ietf:params:jmap:error:limit" and problem["limit"] == "maxSizeUpload"


def test_uploads_past_maxConcurrentUpload_are_a_429_limit_problem(driver: Driver) -> None:
    user = driver.tidings.accounts.check_password("alice", "secret")
    assert user is not None
    for _ in range(driver.tidings.limits.max_concurrent_upload):
        driver.app.uploads.acquire(user.id)
    try:
        status, _, body = driver.send("POST", f"/jmap/upload/{_account(driver)}/", b"x")
        assert status == 429 and orjson.loads(body)["limit"] == "maxConcurrentUpload"
    finally:
        for _ in range(driver.tidings.limits.max_concurrent_upload):
            driver.app.uploads.release(user.id)


def test_uploads_expire_when_nothing_refers_to_them(driver: Driver) -> None:
    blob = _upload(driver, b"short-lived")["blobId"]
    url = f"/jmap/download/{_account(driver)}/{blob}/x"
    assert driver.send("GET", url)[0] == 200
    store = driver.tidings.store
    assert store.collect_garbage(int(time.time())) >= 0
    assert driver.send("GET", url)[0] == 200  # not yet expired
    store.collect_garbage(int(time.time()) + driver.tidings.config.upload_ttl + 1)
    assert driver.send("GET", url)[0] == 404
    assert not store.blobs.path(blob).exists()


def test_blob_copy_copies_into_the_target_account(driver: Driver) -> None:
    blob = _upload(driver, b"shared")["blobId"]
    account = _account(driver)
    out = driver.calls([["Blob/copy", {"fromAccountId": account, "accountId": account,
                                       "blobIds": [blob, "Bnope"]}, "c"]])
    assert out[0][0] == "Blob/copy"
    assert out[0][1]["copied"] == {blob: blob}
    assert out[0][1]["notCopied"]["Bnope"]["type"] == "notFound"


@pytest.mark.parametrize("args", [{"blobIds": "x"}, {"blobIds": ["x"], "extra": 1}, {"blobIds": ["x"],
                                                                                    "fromAccountId": 5}])
def test_blob_copy_rejects_bad_arguments(driver: Driver, args: dict[str, object]) -> None:
    account = _account(driver)
    out = driver.calls([["Blob/copy", {"fromAccountId": account, "accountId": account, **args}, "c"]])
    assert out[0][1]["type"] == "invalidArguments"


def test_blob_copy_needs_the_core_capability_in_using(driver: Driver) -> None:
    account = _account(driver)
    status, _, body = driver.api({"using": [MAIL], "methodCalls": [
        ["Blob/copy", {"fromAccountId": account, "accountId": account, "blobIds": []}, "c"]]})
    assert status == 200 and body["methodResponses"][0][1]["type"] == "unknownMethod"
