"""`ledger demo`: a narrated tour on a local stack of its own, in a throw-away home.

The tour never touches the user's ledger: it runs in a new temporary LEDGER_HOME (its own
esdblite, PostgreSQL and runner, whatever LEDGER_* says), which is stopped and removed at the end
unless `--keep` asks to explore it."""

from __future__ import annotations

import dataclasses
import shlex
import shutil
import tempfile
from pathlib import Path

from cli.commands.projections import rebuild_with_progress
from cli.context import Context, make_ledger, read_conn, write_model_fold
from cli.errors import ExitCode, fail
from cli.render import money
from cli.statements import show_statement
from ledger.errors import InsufficientFundsError

ALICE, BOB = "alice", "bob"


def demo_context(obj: Context, home: Path) -> Context:
    """The context of the tour: the same output and clock, a local stack in `home`."""
    settings = dataclasses.replace(obj.settings, home=home, eventstore_uri=None, database_url=None)
    return Context(settings, obj.output, obj.debug)


def run_demo(obj: Context, keep: bool) -> None:
    """Run the tour in a new throw-away home; stop and remove it after, unless `keep`."""
    from cli.stack import LocalStack

    base = Path(tempfile.mkdtemp(prefix="ledger-demo-"))
    home = base / "home"
    demo = demo_context(obj, home)
    out = obj.output
    out.line(f"A tour of the ledger in a throw-away home of its own: {home}")
    out.line("(your own ledger is not touched; each step shows the command it stands for)")
    try:
        with demo.closing:
            tour(demo)
    finally:
        if keep:
            env = f"LEDGER_HOME={shlex.quote(str(home))}"
            out.line("")
            out.line(f"The demo's stack is still running in {home}. Explore it with:")
            out.line(f"  {env} ledger accounts")
            out.line(f"and remove it when done with:  {env} ledger down && rm -rf {base}")
        else:
            from projections.pgserver import prune_service_dirs

            LocalStack(home).down()
            shutil.rmtree(base, ignore_errors=True)
            prune_service_dirs()  # as root, PostgreSQL's data lives outside the home


def tour(obj: Context) -> None:
    """Open accounts, post, get refused, retry, reverse, report, rebuild, verify."""
    from projections.consistency import wait_for_position
    from projections.names import PROJECTION_NAMES
    from projections.queries import get_balance, statement
    from projections.verify import verify

    out = obj.output

    def say(text: str, *commands: str) -> None:
        out.line("")
        out.line(f"▶ {text}")
        for command in commands:
            out.line(f"  $ ledger {command}")

    say("Starting a local stack: esdblite, PostgreSQL and the projection runner.", "up")
    ledger = make_ledger(obj)
    say(
        f"Opening two accounts: {ALICE} (EUR, overdraft 50.00) and {BOB} (EUR).",
        f"open {ALICE} --owner 'Alice Example' --currency EUR --overdraft-limit 50.00",
        f"open {BOB} --owner 'Bob Example' --currency EUR",
    )
    ledger.open_account(ALICE, "Alice Example", "EUR", "50.00")
    ledger.open_account(BOB, "Bob Example", "EUR")

    say(
        f"Depositing 100.00 into {ALICE} with transaction id salary.",
        f"deposit {ALICE} 100.00 --tx salary -d 'November salary'",
    )
    o = ledger.deposit(ALICE, "100.00", "salary", "November salary")
    out.line(f"  balance {money(o.balance, 'EUR')} EUR at revision {o.revision}")

    say(
        f"Withdrawing 200.00 from {ALICE}: more than balance + overdraft, so it is refused.",
        f"withdraw {ALICE} 200.00 --tx rent -d Rent",
    )
    try:
        ledger.withdraw(ALICE, "200.00", "rent", "Rent")
    except InsufficientFundsError as exc:
        out.line(f"  refused: {exc}")

    say(
        "Sending salary again (a client retry): nothing new is posted.",
        f"deposit {ALICE} 100.00 --tx salary -d 'November salary'",
    )
    again = ledger.deposit(ALICE, "100.00", "salary", "November salary")
    out.line(f"  replayed={again.replayed}, same revision {again.revision}")

    say(
        "Withdrawing 30.00 (groceries), then reversing it; a gift to bob.",
        f"withdraw {ALICE} 30.00 --tx groceries -d Groceries",
        f"reverse {ALICE} groceries --tx refund",
        f"deposit {BOB} 25.50 --tx gift -d Gift",
    )
    ledger.withdraw(ALICE, "30.00", "groceries", "Groceries")
    ledger.reverse(ALICE, "groceries", "refund", "Refund")
    ledger.deposit(BOB, "25.50", "gift", "Gift")

    say(
        f"Transferring 20.00 from {ALICE} to {BOB}: a process of its own stream "
        "(requested, debited, credited, completed), safe to repeat and to resume after a crash.",
        f"transfer {ALICE} {BOB} 20.00 --tx lunch -d Lunch",
        "transfer-status lunch",
    )
    moved = ledger.transfer(ALICE, BOB, "20.00", "lunch", "Lunch")
    out.line(f"  transfer lunch: {moved.state.status.value}")

    say(
        "Waiting until the projections include the last write (read-your-writes).",
        f"balance {ALICE}",
        f"balance {BOB}",
    )
    with read_conn(obj) as conn:
        caught = wait_for_position(conn, moved.commit_position, timeout=30)
        out.line(f"  projections caught up: {caught}")
        for account in (ALICE, BOB):
            row = get_balance(conn, account)
            if row is not None:
                out.line(f"  {account}: {money(row.balance, row.currency)} {row.currency}")
        row = get_balance(conn, ALICE)
        if row is not None:
            say(f"The statement of {ALICE} (from the statements projection).", f"statement {ALICE}")
            show_statement(obj, statement(conn, row), False)

    say("Rebuilding every projection blue/green from the start of the log.", "projections rebuild")
    report = rebuild_with_progress(obj, list(PROJECTION_NAMES), discard=True)
    out.line(
        f"  {report.events} events at {report.events_per_s:,.0f}/s, verified against the write "
        f"model and swapped in; differing rows: {sum(report.differences.values())}"
    )

    say("Verifying every invariant of the read models.", "verify")
    with read_conn(obj) as conn:
        violations = verify(conn, write_model_fold(obj))
    out.line("  every invariant holds." if not violations else f"  {len(violations)} violations!")
    if violations:
        fail(f"verify found {len(violations)} violations", ExitCode.CHECK_FAILED)
    say("Done. On your own ledger, try:", "open …", "accounts", "status")
