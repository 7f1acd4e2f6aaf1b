"""Security basics: loopback-only servers, no credential ever shown or logged, parameterised SQL,
and a ledger home only its owner can enter."""

from __future__ import annotations

import ast
import ipaddress
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest
from typer.testing import CliRunner, Result

from cli.main import app
from esdblite.process import READY_PREFIX, ServerProcess
from projections.pgserver import EmbeddedPostgres

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3tpw"
UNREACHABLE_DB = f"postgresql://user:{SECRET}@127.0.0.1:1/x"
UNREACHABLE_ESDB = f"esdb://admin:{SECRET}@127.0.0.1:1?Tls=false"


def listening_addresses(pid: int) -> set[str]:
    """The addresses a process listens on (TCP), IPv4-mapped IPv6 written as IPv4."""
    found = set()
    for conn in psutil.net_connections(kind="inet"):
        if conn.pid == pid and conn.status == psutil.CONN_LISTEN:
            address = ipaddress.ip_address(conn.laddr.ip)
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            found.add(str(address))
    return found


def test_esdblite_listens_on_loopback_only_by_default() -> None:
    with ServerProcess() as server:
        assert server.proc is not None
        addresses = listening_addresses(server.proc.pid)
    assert addresses and addresses <= {"127.0.0.1", "::1"}, addresses


def test_the_esdblite_command_line_listens_on_loopback_only_without_host_option() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "esdblite", "serve", "--memory", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(READY_PREFIX), line
        addresses = listening_addresses(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    assert addresses and addresses <= {"127.0.0.1", "::1"}, addresses


def test_the_embedded_postgresql_listens_on_no_tcp_port(embedded_pg: EmbeddedPostgres) -> None:
    pid = embedded_pg.pid()
    assert pid is not None
    assert listening_addresses(pid) == set()
    socket_dir = embedded_pg.socket_dir
    assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
    with psycopg.connect(embedded_pg.url()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_the_embedded_postgresql_refuses_tcp_and_other_os_users(
    embedded_pg: EmbeddedPostgres,
) -> None:
    with pytest.raises(psycopg.OperationalError) as tcp:
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{embedded_pg.port}/postgres")
    assert "Connection refused" in str(tcp.value)
    # Through the socket, as a role the OS user is not mapped to: peer authentication refuses.
    url = embedded_pg.url().replace("postgres@", "ledger_intruder@", 1)
    with pytest.raises(psycopg.OperationalError) as peer:
        psycopg.connect(url)
    assert "Peer authentication failed" in str(peer.value)
    assert (embedded_pg.data_dir / "pg_hba.conf").read_text().splitlines()[-1] == (
        "local all all peer map=owner"
    )


def _connect_as_nobody(url: str) -> subprocess.CompletedProcess[str]:
    """Try the URL with psql from a process of another OS user (nobody)."""
    import pwd

    from projections.pgserver import EmbeddedPostgres

    psql = EmbeddedPostgres(Path("/nonexistent/data"))._bin_dir()
    nobody = pwd.getpwnam("nobody")
    return subprocess.run(
        [str(psql / "psql"), url, "-c", "SELECT 1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        user=nobody.pw_uid,
        group=nobody.pw_gid,
        extra_groups=[],
        cwd="/",
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="switching OS user needs root")
def test_another_os_user_cannot_reach_the_embedded_postgresql(
    embedded_pg: EmbeddedPostgres,
) -> None:
    done = _connect_as_nobody(embedded_pg.url())
    assert done.returncode != 0
    assert "Permission denied" in done.stderr or "Peer authentication failed" in done.stderr, (
        done.stderr
    )


@pytest.fixture
def fresh_home() -> Iterator[Path]:
    """A ledger home that does not exist yet (the CLI creates it).

    Not under pytest's basetemp, which another pytest session may reset to 0700: the local
    stack's PostgreSQL runs as another user when the tests run as root.
    """
    base = Path(tempfile.mkdtemp(prefix="ledger-home-"))
    base.chmod(0o755)
    try:
        yield base / "nested" / "ledger-home"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _invoke(home: Path, *args: str, **env: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"LEDGER_HOME": str(home), **env})


@pytest.fixture
def local_stack(fresh_home: Path) -> Iterator[Path]:
    """`ledger up` on a fresh home (the default, embedded stack); `ledger down` afterwards."""
    try:
        result = _invoke(fresh_home, "up", "--json")
        assert result.exit_code == 0, result.stderr
        yield fresh_home
    finally:
        _invoke(fresh_home, "down")


def test_the_local_stack_is_reachable_from_this_machine_only_and_its_home_is_0700(
    local_stack: Path,
) -> None:
    from cli.stack import LocalStack

    stack = LocalStack(local_stack)
    states = {s.name: s for s in stack.status()}
    for name in ("eventstore", "postgres"):
        assert states[name].state == "running" and states[name].pid is not None, states[name]
    addresses = listening_addresses(states["eventstore"].pid or 0)
    assert addresses and addresses <= {"127.0.0.1", "::1"}, addresses
    assert listening_addresses(states["postgres"].pid or 0) == set()
    assert stat.S_IMODE(local_stack.stat().st_mode) == 0o700


def _modes(home: Path) -> dict[str, str]:
    """The mode of the home and of everything in it (following its postgres link)."""
    found = {".": oct(stat.S_IMODE(home.stat().st_mode))}
    for path in (*home.rglob("*"), *(home / "postgres").resolve().rglob("*")):
        if path.is_symlink() or path.is_socket():
            continue
        found[str(path)] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


def test_the_local_stack_keeps_its_files_0600_and_directories_0700(local_stack: Path) -> None:
    modes = _modes(local_stack)
    wide = {p: m for p, m in modes.items() if m not in ("0o600", "0o700")}
    assert wide == {}, wide
    for secret in ("eventstore-admin-password", "tls/node.key", "tls/ca.pem"):
        assert modes[str(local_stack / secret)] == "0o600"


def _secret_of(home: Path) -> str:
    return (home / "eventstore-admin-password").read_text().strip()


def test_the_local_event_store_refuses_a_wrong_password_and_an_untrusted_certificate(
    local_stack: Path,
) -> None:
    from esdbclient import EventStoreDBClient
    from esdbclient.exceptions import DiscoveryFailed, GrpcError, SSLError

    from cli.stack import LocalStack

    uri = LocalStack(local_stack).eventstore_uri()
    assert "Tls=true" in uri and f"tlsCAFile={local_stack / 'tls' / 'ca.pem'}" in uri
    assert uri.startswith("esdb+discover://")  # the CLI discovers the leader, as of a cluster
    direct = uri.replace("esdb+discover://", "esdb://", 1)
    for form in (uri, direct):
        with EventStoreDBClient(form) as client:
            assert client.get_commit_position() >= 0
    wrong = direct.replace(_secret_of(local_stack), "guessed")
    with EventStoreDBClient(wrong) as client, pytest.raises(GrpcError) as raised:
        client.get_commit_position()
    assert "UNAUTHENTICATED" in str(raised.value)
    # Discovery (the gossip call) meets the same refusal before any other call.
    with pytest.raises(DiscoveryFailed, match="UNAUTHENTICATED"):
        EventStoreDBClient(uri.replace(_secret_of(local_stack), "guessed"))
    untrusted = direct.split("&tlsCAFile=")[0]
    with EventStoreDBClient(untrusted) as client, pytest.raises(SSLError):
        client.get_commit_position()
    with pytest.raises(DiscoveryFailed):
        EventStoreDBClient(uri.split("&tlsCAFile=")[0])


@pytest.mark.skipif(os.geteuid() != 0, reason="switching OS user needs root")
def test_another_os_user_cannot_reach_the_local_postgresql(local_stack: Path) -> None:
    from cli.stack import LocalStack

    done = _connect_as_nobody(LocalStack(local_stack).database_url())
    assert done.returncode != 0
    assert "Permission denied" in done.stderr, done.stderr


def test_the_local_stack_never_shows_or_logs_its_password(local_stack: Path) -> None:
    secret = _secret_of(local_stack)
    outputs = [
        _invoke(local_stack, *args)
        for args in (
            ("up",),
            ("status",),
            ("status", "--json"),
            ("open", "sec-1", "--owner", "A", "--currency", "EUR"),
            ("--debug", "balance", "sec-missing"),
            ("logs", "eventstore"),
            ("logs", "runner"),
        )
    ]
    for result in outputs:
        assert secret not in result.stdout + result.stderr, result.stdout + result.stderr
    logs = [p for p in local_stack.rglob("*.log") if p.is_file()]
    assert logs and all(secret not in p.read_text(errors="replace") for p in logs)


@pytest.fixture(scope="module")
def read_only_database(embedded_pg: EmbeddedPostgres) -> str:
    """A database whose user may not create tables (migrations fail: an unexpected error)."""
    with psycopg.connect(embedded_pg.url(), autocommit=True) as admin:
        admin.execute("CREATE ROLE ledger_reader LOGIN")
        admin.execute("CREATE DATABASE locked")
    # The OS user is mapped to `postgres` only: connect as postgres, with a password that is
    # ignored (peer authentication) but must never be shown or logged.
    # The session then acts as ledger_reader (`role`), who may not create tables.
    url = embedded_pg.url("locked").replace("postgres@", f"postgres:{SECRET}@", 1)
    return url + "&options=-c%20role%3Dledger_reader"


def test_a_ledger_home_created_while_logging_an_internal_error_is_private(
    fresh_home: Path, read_only_database: str, esdb: ServerProcess
) -> None:
    result = _invoke(
        fresh_home,
        "accounts",
        LEDGER_DATABASE_URL=read_only_database,
        LEDGER_EVENTSTORE_URI=esdb.uri,
    )
    assert result.exit_code == 70, (result.exit_code, result.stderr)
    assert (fresh_home / "logs" / "cli.log").exists()
    assert SECRET not in result.stderr + result.stdout + _home_text(fresh_home)
    modes = {
        str(p.relative_to(fresh_home.parent)): oct(stat.S_IMODE(p.stat().st_mode))
        for p in (fresh_home, *fresh_home.rglob("*"))
    }
    assert modes[fresh_home.name] == oct(0o700), modes


def _home_text(home: Path) -> str:
    if not home.exists():
        return ""
    return "".join(p.read_text(errors="replace") for p in home.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "args",
    [
        ("balance", "acc"),
        ("balance", "acc", "--consistent"),
        ("accounts",),
        ("statement", "acc"),
        ("statement", "acc", "--format", "csv"),
        ("verify",),
        ("projections", "status"),
        ("deposit", "acc", "5", "--tx", "t1"),
        ("deposit", "acc", "5", "--tx", "t1", "--wait"),
        ("--debug", "balance", "acc"),
        ("--debug", "deposit", "acc", "5", "--tx", "t1"),
    ],
)
def test_no_credential_is_printed_or_logged_when_services_are_unreachable(
    fresh_home: Path, args: tuple[str, ...]
) -> None:
    result = _invoke(
        fresh_home,
        *args,
        LEDGER_DATABASE_URL=UNREACHABLE_DB,
        LEDGER_EVENTSTORE_URI=UNREACHABLE_ESDB,
    )
    assert result.exit_code == 3, (result.exit_code, result.stderr)
    assert SECRET not in result.stdout
    assert SECRET not in result.stderr
    assert SECRET not in _home_text(fresh_home)


@pytest.mark.parametrize(
    ("database_url", "eventstore_uri"),
    [
        pytest.param(
            f"host=127.0.0.1 port=1 user=u password={SECRET} dbname=x",
            UNREACHABLE_ESDB,
            id="keyword-conninfo",
        ),
        pytest.param(UNREACHABLE_DB + "?sslmode=bogus", UNREACHABLE_ESDB, id="bad-db-option"),
        pytest.param(UNREACHABLE_DB, UNREACHABLE_ESDB + "&Bogus=1", id="bad-esdb-option"),
        pytest.param(UNREACHABLE_DB, f"http://admin:{SECRET}@127.0.0.1:1", id="bad-esdb-scheme"),
    ],
)
@pytest.mark.parametrize("args", [("balance", "acc"), ("deposit", "acc", "5", "--tx", "t1")])
def test_no_credential_is_printed_or_logged_for_a_misconfigured_uri(
    fresh_home: Path, database_url: str, eventstore_uri: str, args: tuple[str, ...]
) -> None:
    result = _invoke(
        fresh_home,
        *args,
        LEDGER_DATABASE_URL=database_url,
        LEDGER_EVENTSTORE_URI=eventstore_uri,
    )
    assert result.exit_code in (2, 3), (result.exit_code, result.stderr)
    assert SECRET not in result.stdout
    assert SECRET not in result.stderr, result.stderr
    assert SECRET not in _home_text(fresh_home)


# All SQL is parameterised: a static check over the source finds SQL built by formatting.


SQL_CALLS = {"execute", "executemany"}
SQL_COMPOSITION = {"SQL", "Identifier", "Literal", "Placeholder", "Composed"}


def _is_composition(node: ast.expr) -> bool:
    """`sql.SQL(...)`, `sql.Identifier(...)` and so on, or a method chained on one."""
    while isinstance(node, ast.Call | ast.Attribute):
        if isinstance(node, ast.Attribute) and node.attr in SQL_COMPOSITION:
            return isinstance(node.value, ast.Name) and node.value.id == "sql"
        node = node.func if isinstance(node, ast.Call) else node.value
    return isinstance(node, ast.Name) and node.id in SQL_COMPOSITION


def _text_formatting(node: ast.AST) -> list[tuple[int, str]]:
    """Where an expression builds text with f-strings, % or .format (not sql composition)."""
    found: list[tuple[int, str]] = []
    if isinstance(node, ast.JoinedStr):
        values = [v for v in node.values if isinstance(v, ast.FormattedValue)]
        if values:
            found.append(
                (node.lineno, "f-string of " + ", ".join(ast.unparse(v.value) for v in values))
            )
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        if isinstance(node.left, ast.Constant | ast.JoinedStr) and isinstance(
            getattr(node.left, "value", ""), str
        ):
            found.append((node.lineno, "% formatting"))
    elif isinstance(node, ast.Call):
        func = node.func
        if _is_composition(func):
            # Composition is allowed, but its template itself must be a plain string.
            if isinstance(func, ast.Attribute) and func.attr == "SQL" and node.args:
                found += _text_formatting(node.args[0])
            elif isinstance(func, ast.Attribute) and func.attr == "format":
                found += _text_formatting(func.value)
            return found
        if isinstance(func, ast.Attribute) and func.attr == "format":
            found.append((node.lineno, ".format()"))
    for child in ast.iter_child_nodes(node):
        found += _text_formatting(child)
    return found


def _assigned(function: ast.AST, name: str) -> list[ast.expr]:
    """Every value the function assigns (or adds) to a name."""
    values: list[ast.expr] = []
    for node in ast.walk(function):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        if node.value is not None and any(
            isinstance(t, ast.Name) and t.id == name for t in targets
        ):
            values.append(node.value)
    return values


def _query_argument(call: ast.Call) -> ast.expr | None:
    if call.args:
        return call.args[0]
    return next((k.value for k in call.keywords if k.arg == "query"), None)


def unparameterised_sql(path: Path) -> list[str]:
    """Calls of execute/executemany whose SQL text is built by string formatting."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    for function in functions or [tree]:
        for node in ast.walk(function):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in SQL_CALLS
            ):
                continue
            query = _query_argument(node)
            if query is None:
                continue
            sources = [query]
            # A variable passed as the query: look at what the function assigned to it.
            for name in {n.id for n in ast.walk(query) if isinstance(n, ast.Name)}:
                sources += _assigned(function, name)
            for source in sources:
                for line, how in _text_formatting(source):
                    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
                    found.append(f"{where}:{line}: {how} in SQL text")
    return sorted(set(found))


def test_the_static_check_finds_sql_built_by_string_formatting(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    code = (
        "from psycopg import sql\n"
        "def bad(conn, account_id, table):\n"
        "    conn.execute(f\"SELECT * FROM t WHERE id = '{account_id}'\")\n"
        '    conn.execute("SELECT %s" % account_id)\n'
        "    query = 'SELECT * FROM {}'.format(table)\n"
        "    conn.execute(query)\n"
        "    conn.execute(sql.SQL(f'SELECT {table}'))\n"
        "def good(conn, account_id, table):\n"
        "    conn.execute('SELECT * FROM t WHERE id = %s', (account_id,))\n"
        "    conn.execute(sql.SQL('SELECT * FROM {}').format(sql.Identifier(table + '_x')))\n"
    )
    sample.write_text(code)
    found = unparameterised_sql(sample)
    assert [f.split(": ", 1)[1] for f in found] == [
        "f-string of account_id in SQL text",
        "% formatting in SQL text",
        ".format() in SQL text",
        "f-string of table in SQL text",
    ]


def test_all_sql_in_projections_and_cli_is_parameterised() -> None:
    sources = sorted((ROOT / "projections").glob("*.py")) + sorted((ROOT / "cli").glob("*.py"))
    assert len(sources) > 10
    found = [problem for path in sources for problem in unparameterised_sql(path)]
    assert found == [], "SQL text built by string formatting (use %s or sql.SQL/Identifier):\n" + (
        "\n".join(found)
    )
