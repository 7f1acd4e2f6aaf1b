"""The embedded PostgreSQL's commands run as its own user when we are root, started without
fork(): a `user=`/`group=` argument makes Python fork, which runs gRPC's fork handlers in a
process that has used gRPC, and those crashed a test session's process (SIGSEGV)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess

import pytest

from projections import pgserver

NOBODY = pwd.struct_passwd(("svc", "x", 4242, 4343, "", "/nonexistent", "/usr/sbin/nologin"))


def test_as_root_a_command_is_wrapped_in_setpriv_and_needs_no_fork_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given root, a service user and setpriv on the PATH
    monkeypatch.setattr(pgserver, "_as_root", lambda: True)
    monkeypatch.setattr(pgserver, "_system_user", lambda: NOBODY)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")

    # when the command is prepared
    command, kwargs = pgserver.as_service_user(["initdb", "-D", "data"])

    # then setpriv drops to the user's ids and no groups, and subprocess gets nothing that forks
    assert command == [
        "/usr/bin/setpriv",
        "--reuid=4242",
        "--regid=4343",
        "--clear-groups",
        "initdb",
        "-D",
        "data",
    ]
    assert kwargs == {}


def test_without_setpriv_root_falls_back_to_subprocess_user_and_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given root and no setpriv
    monkeypatch.setattr(pgserver, "_as_root", lambda: True)
    monkeypatch.setattr(pgserver, "_system_user", lambda: NOBODY)
    monkeypatch.setattr(shutil, "which", lambda name: None)

    # when the command is prepared
    command, kwargs = pgserver.as_service_user(["initdb"])

    # then the command is unchanged and subprocess switches the user
    assert command == ["initdb"]
    assert kwargs == {"user": 4242, "group": 4343, "extra_groups": []}


def test_the_prepared_command_really_runs_as_the_servers_user() -> None:
    # given this process (root in CI, where the server runs as its own user)
    command, kwargs = pgserver.as_service_user(["sh", "-c", "id -u; id -G"])

    # when it runs
    out = subprocess.run(command, capture_output=True, text=True, check=True, **kwargs)  # type: ignore[call-overload]

    # then it ran as the server's user with only that user's group (as root), or as us
    uid, groups = out.stdout.splitlines()
    if os.geteuid() == 0:
        user = pgserver._system_user()
        assert (int(uid), groups.split()) == (user.pw_uid, [str(user.pw_gid)])
    else:
        assert int(uid) == os.geteuid()
