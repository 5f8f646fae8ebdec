"""Configs, the isolation policy, the bubblewrap allowlist, uids, sweeps and the untrusted channel."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sandbox_helpers import light, require_isolation

from thor.envs.sandbox import LocalSandbox, LocalSandboxConfig, RemoteSandboxConfig, SandboxLimits
from thor.envs.sandbox import isolation as iso
from thor.envs.sandbox.channel import Channel, ChannelError, check_result
from thor.envs.sandbox.check import check_sandbox
from thor.envs.sandbox.procs import (
    UidPool,
    exit_status,
    exit_status_supported,
    list_procs,
    sweep,
)
from thor.envs.sandbox.template import death_reason
from thor.errors import ConfigError, IsolationError
from thor.registries import SANDBOXES

REPO = Path(__file__).resolve().parents[2]


def test_registry_entries_and_config_validation() -> None:
    assert {"local", "remote"} <= set(SANDBOXES.names())
    assert SANDBOXES.entry("local").config is LocalSandboxConfig
    assert SANDBOXES.entry("remote").config is RemoteSandboxConfig
    with pytest.raises(ConfigError, match="did you mean 'pool_size'"):
        SANDBOXES.make("local", pool_sise=3)
    with pytest.raises(ConfigError, match="timeout_s"):
        SANDBOXES.config("local", limits={"timeout_s": 0})
    with pytest.raises(ConfigError, match="http"):
        SANDBOXES.config("remote", url="ftp://x")
    assert SandboxLimits().timeout_s == 30 and SandboxLimits(cpu_s=2).cell_cpu_s == 2.0


def test_turning_isolation_off_is_refused_when_ci_requires_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("THOR_REQUIRE_ISOLATION", "1")
    with pytest.raises(IsolationError, match="THOR_REQUIRE_ISOLATION=1"):
        LocalSandbox(light(require_isolation=False))


def test_turning_isolation_off_warns_what_is_unprotected(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("THOR_REQUIRE_ISOLATION", raising=False)
    with caplog.at_level(logging.WARNING, logger="thor.sandbox"):
        assert iso.resolve_isolation(LocalSandboxConfig(require_isolation=False)) is False
    text = caplog.text
    assert "UNPROTECTED" in text and "network" in text and "process limit" in text


def test_missing_bubblewrap_says_what_to_do() -> None:
    with pytest.raises(IsolationError) as info:
        LocalSandbox(light(bwrap="no-such-bwrap-here"))
    msg = str(info.value)
    assert "install it" in msg and "bubblewrap" in msg and "require_isolation=False" in msg


def test_not_root_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    problems = iso.isolation_problems()
    assert any("run as root" in p and "container" in p for p in problems)
    with pytest.raises(IsolationError, match="run as root"):
        iso.resolve_isolation(LocalSandboxConfig())


def test_bubblewrap_binds_an_allowlist_only() -> None:
    if sys.platform != "linux":
        pytest.skip("bubblewrap is Linux only")
    a, b = socket.socketpair()
    launch = iso.launch_command(LocalSandboxConfig(), True, b.fileno())
    try:
        argv = launch.argv
        sources = [
            argv[i + 1]
            for i, arg in enumerate(argv)
            if arg in ("--ro-bind", "--bind", "--dev-bind")
        ]
        assert "--bind" not in argv and "--dev-bind" not in argv  # nothing of the host is writable
        assert "/" not in sources and str(REPO) not in sources and str(Path.home()) not in sources
        allowed = [
            "/usr",
            "/etc/",
            sys.base_prefix,
            os.path.realpath(sys.base_prefix),
            sys.prefix,
            os.path.realpath(sys.prefix),
            str(iso.WORKER_DIR),
        ]
        for src in sources:
            assert any(src == p or src.startswith(p.rstrip("/") + "/") for p in allowed), src
            assert not src.startswith(str(REPO)) or src.startswith(
                (sys.prefix, os.path.realpath(sys.prefix), str(iso.WORKER_DIR))
            ), src
        for flag in ("--unshare-net", "--unshare-pid", "--unshare-ipc", "--clearenv", "--cap-drop"):
            assert flag in argv
    finally:
        launch.close_fds()
        a.close()
        b.close()


def test_extra_paths_must_exist_and_lie_outside_dev_and_proc() -> None:
    with pytest.raises(IsolationError, match="/dev or /proc"):
        iso.launch_command(LocalSandboxConfig(extra_ro_paths=["/proc/self"]), True, 0)
    with pytest.raises(IsolationError, match="does not exist"):
        iso.launch_command(LocalSandboxConfig(extra_ro_paths=["/no/such/dir"]), True, 0)


def test_uid_pools_hand_out_distinct_unprivileged_uids() -> None:
    a, b = UidPool(size=8, seed=1), UidPool(size=8, seed=2)
    got = [a.take() for _ in range(8)]
    assert len(set(got)) == 8 and all(u >= 1 << 20 for u in got) and all(u in a for u in got)
    assert not set(got) & {b.take() for _ in range(8)}
    with pytest.raises(RuntimeError, match="in use"):
        a.take()
    a.give_back(got[3])
    assert a.take() == got[3]


def test_sweep_kills_only_the_given_uid() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to start processes as other uids")
    uid = UidPool(size=2).take()
    kids = [
        subprocess.Popen(["sleep", "60"], user=uid, group=uid, start_new_session=True)
        for _ in range(3)
    ]
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        assert sum(p.uid == uid for p in list_procs()) == 3
        assert sweep(uid)
        for k in kids:
            assert k.wait(timeout=10) == -9
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
        for k in kids:
            k.kill()
            k.wait()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk=st.binary(max_size=300))
def test_channel_survives_any_bytes(junk: bytes) -> None:
    channel, theirs = Channel.pair(max_frame=1 << 16)
    try:
        theirs.sendall(junk)
        theirs.close()
        t0 = time.monotonic()
        try:
            msg, _ = channel.recv(time.monotonic() + 2)
            assert isinstance(msg, dict) and isinstance(msg["type"], str)
        except ChannelError:
            pass
        assert time.monotonic() - t0 < 2.5
    finally:
        channel.close()


def test_channel_caps_frames_and_times_out() -> None:
    channel, theirs = Channel.pair(max_frame=100)
    theirs.sendall((10**6).to_bytes(4, "big") + b"{}")
    with pytest.raises(ChannelError, match="limit 100"):
        channel.recv(time.monotonic() + 2)
    channel.close()
    channel, theirs = Channel.pair(max_frame=100)
    t0 = time.monotonic()
    with pytest.raises(ChannelError, match="in time"):
        channel.recv(time.monotonic() + 0.2)  # the other end stays silent
    assert time.monotonic() - t0 < 2
    channel.close()
    theirs.close()


@settings(deadline=None)
@given(
    msg=st.dictionaries(
        st.sampled_from(
            ["status", "stdout", "stderr", "reason", "duration_s", "truncated", "type"]
        ),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(),
            st.text(max_size=20),
            st.text(alphabet=st.sampled_from("a\ud800\udc80\udfff\ufffd"), max_size=5),
            st.lists(st.integers()),
        ),
    )
)
def test_result_schema_check_rejects_or_returns_clean_fields(msg: dict[str, object]) -> None:
    try:
        out = check_result(msg, max_text=10, elapsed=1.5)
    except ChannelError:
        return
    assert out["status"] in ("ok", "error", "timeout")
    assert all(
        isinstance(out[k], str) and len(out[k]) <= 2000 for k in ("stdout", "stderr", "reason")
    )
    for key in ("stdout", "stderr", "reason"):
        out[key].encode("utf-8")  # never a lone surrogate
    assert isinstance(out["truncated"], bool) and 0 <= out["duration_s"] <= 1.5


def test_death_reasons() -> None:
    assert death_reason({"signal": 11}).startswith("killed by SIGSEGV")
    assert "CPU time limit of 60 s" in death_reason({"signal": 9, "cpu_s": 60.2, "cpu_cap": 60})
    assert death_reason({"code": 3}) == "the interpreter exited with code 3 (os._exit or a crash)"
    assert death_reason({"signal": "x", "code": None}) == "the interpreter died"


def test_exit_status_is_read_from_the_pidfd_once_reaped() -> None:
    if not exit_status_supported():
        pytest.skip("this kernel keeps no exit status on pidfds (Linux < 6.15)")
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(0.3); raise SystemExit(4)"]
    )
    pidfd = os.pidfd_open(child.pid)
    try:
        assert exit_status(pidfd) is None  # alive
        time.sleep(0.6)
        assert exit_status(pidfd) is None  # a zombie: nobody reaped it yet
        child.wait()
        status = exit_status(pidfd)
        assert status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 4
    finally:
        os.close(pidfd)
    assert death_reason({"signal": 9, "code": None, "cpu_cap": 60}).endswith("if it ran that long)")


def test_check_reports_what_is_missing() -> None:
    report = check_sandbox({"bwrap": "no-such-bwrap-here"})
    assert not report.ok and "install it" in report.fix
    assert "isolation does NOT work here" in report.render()


def test_check_probes_a_real_sandbox() -> None:
    require_isolation()
    report = check_sandbox(light())
    assert report.ok, report.render()
    names = {c.name for c in report.checks}
    assert {
        "no network",
        "process limit enforced",
        "root-only files unreadable",
        "own processes only",
        "socket families unix/inet only (seccomp)",
        "memfds refused (seccomp)",
        "session memory bounded (cgroup)",
    } <= names
