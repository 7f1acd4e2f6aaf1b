"""`ledger demo`: a narrated tour of the ledger on the local stack, with fresh account ids."""

from __future__ import annotations

import uuid

from cli.commands.projections import rebuild_with_progress
from cli.context import Context, make_ledger, read_conn, write_model_fold
from cli.errors import ExitCode, fail
from cli.render import money
from cli.statements import show_statement
from ledger.errors import InsufficientFundsError


def run_demo(obj: Context) -> None:
    """Open accounts, post, get refused, retry, reverse, report, rebuild, verify."""
    from projections.consistency import wait_for_position
    from projections.names import PROJECTION_NAMES
    from projections.queries import get_balance, statement
    from projections.verify import verify

    out = obj.output
    run = uuid.uuid4().hex[:6]
    alice, bob = f"alice-{run}", f"bob-{run}"

    def say(text: str) -> None:
        out.line("")
        out.line(f"▶ {text}")

    ledger = make_ledger(obj)
    say(f"Opening two accounts: {alice} (EUR, overdraft 50.00) and {bob} (EUR).")
    ledger.open_account(alice, "Alice Example", "EUR", "50.00")
    ledger.open_account(bob, "Bob Example", "EUR")

    say(f"Depositing 100.00 into {alice} with transaction id salary-{run}.")
    o = ledger.deposit(alice, "100.00", f"salary-{run}", "November salary")
    out.line(f"  balance {money(o.balance, 'EUR')} EUR at revision {o.revision}")

    say(f"Withdrawing 200.00 from {alice}: more than balance + overdraft, so it is refused.")
    try:
        ledger.withdraw(alice, "200.00", f"rent-{run}", "Rent")
    except InsufficientFundsError as exc:
        out.line(f"  refused: {exc}")

    say(f"Sending salary-{run} again (a client retry): nothing new is posted.")
    again = ledger.deposit(alice, "100.00", f"salary-{run}", "November salary")
    out.line(f"  replayed={again.replayed}, same revision {again.revision}")

    say(f"Withdrawing 30.00 (groceries-{run}), then reversing it.")
    ledger.withdraw(alice, "30.00", f"groceries-{run}", "Groceries")
    reversal = ledger.reverse(alice, f"groceries-{run}", f"refund-{run}", "Refund")
    ledger.deposit(bob, "25.50", f"gift-{run}", "Gift")

    say("Waiting until the projections include the last write (read-your-writes).")
    with read_conn(obj) as conn:
        caught = wait_for_position(conn, reversal.commit_position, timeout=30)
        out.line(f"  projections caught up: {caught}")
        for account in (alice, bob):
            row = get_balance(conn, account)
            if row is not None:
                out.line(f"  {account}: {money(row.balance, row.currency)} {row.currency}")
        row = get_balance(conn, alice)
        if row is not None:
            say(f"The statement of {alice} (from the statements projection).")
            show_statement(obj, statement(conn, row), False)

    say("Rebuilding every projection blue/green from the start of the log.")
    report = rebuild_with_progress(obj, list(PROJECTION_NAMES), discard=True)
    out.line(
        f"  {report.events} events at {report.events_per_s:,.0f}/s, verified against the write "
        f"model and swapped in; differing rows: {sum(report.differences.values())}"
    )

    say("Verifying every invariant of the read models.")
    with read_conn(obj) as conn:
        violations = verify(conn, write_model_fold(obj))
    out.line("  every invariant holds." if not violations else f"  {len(violations)} violations!")
    if violations:
        fail(f"verify found {len(violations)} violations", ExitCode.CHECK_FAILED)
    out.line("")
    out.line("Done. Try: ledger accounts · ledger statement " + alice + " · ledger status")
