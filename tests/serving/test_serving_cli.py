"""``thor serve`` and ``thor sandbox serve``: user errors are one line saying what to change."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from thor.cli import main


@pytest.fixture()
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.mark.parametrize("command", [["serve"], ["sandbox", "serve"]])
def test_user_errors_are_one_line(
    command: list[str], busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        (["--port", "99999"], "--port 99999 is not a TCP port"),
        (["--port", "-1"], "is not a TCP port"),
        (["--host", "0.0.0.0", "--port", "0"], "--token"),
        (["--port", str(busy_port)], "already in use"),
        (["--port", "0", "--workers", "0"], "at least 1"),
    ]
    for args, message in cases:
        assert main([*command, *args]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
        assert "Traceback" not in err
