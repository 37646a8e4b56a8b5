"""The `tidings` command, run for real as a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from .helpers import basic

TIDINGS = Path(sys.executable).with_name("tidings")


def run(*args: str, data: Path | None = None, env: dict[str, str] | None = None, stdin: str | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    full_env.update(env or {})
    command = [str(TIDINGS), *args] + (["--data", str(data)] if data is not None else [])
    return subprocess.run(command, env=full_env, input=stdin, capture_output=True, text=True, timeout=60, cwd=cwd)


def _one_line_error(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("tidings")


def test_user_add_list_passwd_remove(tmp_path: Path) -> None:
    data = tmp_path / "data"
    added = run("user", "add", "alice", "--password", "pw1", data=data)
    assert added.returncode == 0 and "alice" in added.stdout
    assert run("user", "add", "bob", data=data, stdin="pw2\n").returncode == 0
    listing = run("user", "list", data=data)
    assert [line.split("\t")[0] for line in listing.stdout.splitlines()] == ["alice", "bob"]
    assert run("user", "passwd", "alice", "--password", "new", data=data).returncode == 0
    assert run("user", "remove", "bob", data=data).returncode == 0
    assert [line.split("\t")[0] for line in run("user", "list", data=data).stdout.splitlines()] == ["alice"]


def test_token_create_list_revoke(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run("user", "add", "alice", "--password", "pw", data=data)
    token = run("token", "create", "alice", "--label", "phone", data=data).stdout.strip()
    assert token.startswith("tdg_")
    assert run("token", "list", "alice", data=data).stdout.startswith("phone\t")
    _one_line_error(run("token", "create", "alice", "--label", "phone", data=data))
    assert run("token", "revoke", "alice", "phone", data=data).returncode == 0
    assert run("token", "list", "alice", data=data).stdout == ""


def test_data_defaults_to_TIDINGS_DATA_then_the_current_directory(tmp_path: Path) -> None:
    env_data = tmp_path / "from-env"
    result = run("user", "add", "e", "--password", "pw", env={"TIDINGS_DATA": str(env_data)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (env_data / "tidings.sqlite3").exists()
    run("user", "add", "c", "--password", "pw", cwd=tmp_path)
    assert (tmp_path / "tidings-data" / "tidings.sqlite3").exists()
    # A flag beats the environment.
    flag_data = tmp_path / "flag"
    run("user", "add", "f", "--password", "pw", data=flag_data, env={"TIDINGS_DATA": str(env_data)})
    assert (flag_data / "tidings.sqlite3").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["bogus"],
        ["user"],
        ["user", "add"],
        ["user", "frob", "x"],
        ["user", "add", "bad name!", "--password", "x"],
        ["user", "add", "empty", "--password", ""],
        ["user", "passwd", "nobody", "--password", "x"],
        ["user", "remove", "nobody"],
        ["token", "create", "nobody"],
        ["token", "revoke", "nobody", "label"],
        ["token", "list"],
        ["serve", "--http", "nonsense"],
        ["serve", "--log-level", "loud"],
        ["config", "show", "--config", "/nonexistent.toml"],
    ],
)
def test_bad_arguments_give_one_line_and_a_non_zero_exit(tmp_path: Path, args: list[str]) -> None:
    _one_line_error(run(*args, data=tmp_path / "data", stdin=""))


def test_a_data_directory_that_is_not_ours_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "tidings.sqlite3").write_bytes(b"this is not a database" * 100)
    _one_line_error(run("user", "list", data=data))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _one_line_error(run("user", "list", data=blocker / "sub"))


def test_a_bad_config_file_or_environment_value_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("max_size_upload = 'lots'\n")
    _one_line_error(run("config", "show", "--config", str(bad)))
    bad.write_text("nonsense = 1\n")
    _one_line_error(run("config", "show", "--config", str(bad)))
    bad.write_text("[[[")
    _one_line_error(run("config", "show", "--config", str(bad)))
    _one_line_error(run("config", "show", env={"TIDINGS_MAX_SIZE_UPLOAD": "many"}))


def test_config_precedence_is_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "tidings.toml"
    config.write_text(f'data = "{tmp_path / "file"}"\ndomain = "file.example"\nmax_calls_in_request = 7\n'
                      'upload_ttl = 100\n')

    def shown(*extra: str, env: dict[str, str] | None = None) -> dict[str, str]:
        out = run("config", "show", "--config", str(config), *extra, env=env).stdout
        return dict(line.split(" = ", 1) for line in out.splitlines())

    values = shown()
    assert values["domain"] == "'file.example'" and values["max_calls_in_request"] == "7"
    values = shown(env={"TIDINGS_MAX_CALLS_IN_REQUEST": "9", "TIDINGS_DATA": str(tmp_path / "env")})
    assert values["max_calls_in_request"] == "9" and values["upload_ttl"] == "100"
    assert values["data"] == repr(str(tmp_path / "env"))
    values = shown("--data", str(tmp_path / "flag"), env={"TIDINGS_DATA": str(tmp_path / "env")})
    assert values["data"] == repr(str(tmp_path / "flag"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(data: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    full_env.update(env or {})
    process = subprocess.Popen([str(TIDINGS), "serve", "--data", str(data), "--http", f"127.0.0.1:{port}", *extra],
                               env=full_env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, url
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(process.stderr.read() if process.stderr else "no start") from None
            time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_logs_each_request_and_exits_cleanly_on_a_signal_after_in_flight_work(
    tmp_path: Path, sig: signal.Signals
) -> None:
    data = tmp_path / "data"
    run("user", "add", "alice", "--password", "pw", data=data)
    process, url = _start(data)
    auth = {"Authorization": basic("alice", "pw")}
    with httpx.Client(base_url=url, headers=auth, timeout=30) as http:
        assert http.get("/.well-known/jmap").status_code == 200
        assert http.get("/nope").status_code == 404
        # An open event stream does not hold the shutdown up.
        with http.stream("GET", "/jmap/eventsource/?types=*&closeafter=no&ping=0") as events:
            assert events.status_code == 200
            started = time.monotonic()
            process.send_signal(sig)
            assert list(events.iter_bytes())  # the stream ends cleanly
            process.wait(20)
    assert time.monotonic() - started < 8
    assert process.returncode == 0
    stderr = process.stderr.read() if process.stderr else ""
    assert "Traceback" not in stderr
    access = [line for line in stderr.splitlines() if "tidings.access" in line]
    assert any("GET /.well-known/jmap 200" in line for line in access)
    assert any("GET /nope 404" in line for line in access)
    assert len([line for line in access if "/.well-known/jmap" in line]) == 1


def test_serve_finishes_a_request_in_flight_when_told_to_stop(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run("user", "add", "alice", "--password", "pw", data=data)
    process, url = _start(data, env={"TIDINGS_ACCESS_LOG": "false"})
    body = b'{"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {"a": 1}, "c"]]}'
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as sock:
        # Send all but the last byte, so the request is in flight when the signal arrives.
        head = (f"POST /jmap/api/ HTTP/1.1\r\nHost: x\r\nAuthorization: {basic('alice', 'pw')}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        sock.sendall(head + body[:-1])
        time.sleep(0.3)  # let the server read what was sent (nothing to await from outside)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        sock.sendall(body[-1:])
        response = b""
        reader = threading.Event()
        sock.settimeout(20)
        while b"\r\n\r\n" not in response or not response.endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
        reader.set()
    assert response.startswith(b"HTTP/1.1 200"), response
    assert b'"Core/echo",{"a":1}' in response
    assert process.wait(20) == 0
