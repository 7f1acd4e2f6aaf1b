"""The peer, side by side: the `eventsourcing` library (9.5) doing the same bank workload.

An event-sourced account aggregate (`eventsourcing.domain.Aggregate`: a balance, an overdraft
limit and the last WINDOW_SIZE transaction ids it has seen, the bound of our ledger's window)
in an `eventsourcing.application.Application` on its PostgreSQL recorder, and its
`ProjectionRunner` with a `Projection` keeping a balance table and a tracking record in
PostgreSQL. The same rules as our ledger (overdraft check, idempotency by transaction id) and
the same durability of a write: an embedded PostgreSQL started the way our read side starts it
(`projections.pgserver.EmbeddedPostgres`: fsync on, synchronous_commit on, checked below), in a
database of its own.

Figures:
- `peer_commands_per_s` (and p50/p99; `_8_callers`, `_32_callers`: threads of one process): the
  command schedule of `bench.workload`, the same code as ours, with the aggregate cache on and
  no deep copy of a cached aggregate (our handler caches immutable states and copies nothing);
  `peer_deepcopy_commands_per_s` is the library's default, a deep copy on every load.
- `peer_projection_events_per_s`: the library's `ProjectionRunner` catching up from scratch, as
  the library runs it (one transaction per event).
- `peer_projection_pg_limit_events_per_s`: PostgreSQL alone doing that projection's writes in
  transactions of PG_LIMIT_BATCH events, our rebuild's batch: the bound of any runner at that
  batch size, with nothing read or decoded while timed.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import uuid
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

import psycopg
from eventsourcing.application import Application
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.projection import Projection, ProjectionRunner
from eventsourcing.utils import get_topic
from psycopg import sql

from bench.harness import Run, percentile
from bench.projections_bench import REBUILD_BATCH
from bench.workload import open_accounts, run_callers
from ledger.accounts.window import WINDOW_SIZE
from projections.pgserver import EmbeddedPostgres

ACCOUNTS = 10
SAVE_EVERY = 500  # events per save (one INSERT transaction) when filling the store
CATCH_UP_TIMEOUT = 1800.0
CALLERS = (1, 8, 32)
PG_LIMIT_BATCH = REBUILD_BATCH


class PeerRefused(Exception):
    """A business refusal: overdraft, or a transaction id reused with other content."""


def cents(amount: str) -> int:
    """A positive amount with at most two decimals, in cents."""
    try:
        value = Decimal(amount)
    except InvalidOperation as exc:
        raise PeerRefused(f"not an amount: {amount!r}") from exc
    exponent = value.as_tuple().exponent  # a letter for NaN and infinities
    if value <= 0 or isinstance(exponent, str) or exponent < -2:
        raise PeerRefused(f"not a positive amount with two decimals: {amount!r}")
    return int(value * 100)


class PeerAccount(Aggregate):
    """A bank account: balance and overdraft limit in cents, the transaction ids seen."""

    @staticmethod
    def create_id(account_id: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/accounts/{account_id}")

    @event("Opened")
    def __init__(self, account_id: str, owner: str, currency: str, overdraft_limit: int) -> None:
        self.account_id = account_id
        self.owner = owner
        self.currency = currency
        self.overdraft_limit = overdraft_limit
        self.balance = 0
        # transaction id -> signed amount, oldest first: the last WINDOW_SIZE, as our window.
        self.transactions: dict[str, int] = {}

    def _seen(self, transaction_id: str, signed: int) -> bool:
        """Idempotency: the same id and amount again is a no-op, another amount a refusal."""
        previous = self.transactions.get(transaction_id)
        if previous is None:
            return False
        if previous != signed:
            raise PeerRefused(f"transaction {transaction_id} was posted with another amount")
        return True

    def deposit(self, amount: int, transaction_id: str) -> bool:
        """Post a deposit; False when the transaction was already posted."""
        if self._seen(transaction_id, amount):
            return False
        self.deposited(amount, transaction_id)
        return True

    def withdraw(self, amount: int, transaction_id: str) -> bool:
        """Post a withdrawal unless it would go below minus the overdraft limit."""
        if self._seen(transaction_id, -amount):
            return False
        if self.balance - amount < -self.overdraft_limit:
            raise PeerRefused("insufficient funds")
        self.withdrawn(amount, transaction_id)
        return True

    def _remember(self, transaction_id: str, signed: int) -> None:
        self.transactions[transaction_id] = signed
        if len(self.transactions) > WINDOW_SIZE:
            del self.transactions[next(iter(self.transactions))]

    @event("Deposited")
    def deposited(self, amount: int, transaction_id: str) -> None:
        self.balance += amount
        self._remember(transaction_id, amount)

    @event("Withdrawn")
    def withdrawn(self, amount: int, transaction_id: str) -> None:
        self.balance -= amount
        self._remember(transaction_id, -amount)


class PeerBank(Application[UUID]):
    """The application: commands load the account (cache or store), decide, save."""

    name = "PeerBank"
    # Like our handler's snapshot_every=500.
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {PeerAccount: 500}

    def open_account(self, account_id: str, owner: str, currency: str) -> UUID:
        account = PeerAccount(
            account_id=account_id, owner=owner, currency=currency, overdraft_limit=0
        )
        self.save(account)
        return account.id

    def deposit(self, account_id: str, amount: str, transaction_id: str) -> int:
        """Deposit; returns the balance after it (or after the original on a replay)."""
        account: PeerAccount = self.repository.get(PeerAccount.create_id(account_id))
        if account.deposit(cents(amount), transaction_id):
            self._save(account)
        return account.balance

    def withdraw(self, account_id: str, amount: str, transaction_id: str) -> int:
        """Withdraw (overdraft checked); returns the balance after it."""
        account: PeerAccount = self.repository.get(PeerAccount.create_id(account_id))
        if account.withdraw(cents(amount), transaction_id):
            self._save(account)
        return account.balance

    def _save(self, account: PeerAccount) -> None:
        # Without deep copies the aggregate decided on is the cached one: a save that fails (a
        # concurrent writer took the version) must not leave its events in the cache.
        try:
            self.save(account)
        except IntegrityError:
            if self.repository.cache is not None:
                with contextlib.suppress(KeyError):
                    self.repository.cache.get(account.id, evict=True)
            raise

    def balance(self, account_id: str) -> int:
        account: PeerAccount = self.repository.get(PeerAccount.create_id(account_id))
        return account.balance


class PeerBalancesView(PostgresTrackingRecorder):
    """The materialised view: a balance table, updated with its tracking record atomically."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        table = sql.Identifier(datastore.schema), sql.Identifier("peer_account_balances")
        self.sql_create_statements.append(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {0}.{1} (account_id uuid PRIMARY KEY,"
                " balance bigint NOT NULL, version bigint NOT NULL)"
            ).format(*table)
        )
        self.upsert = sql.SQL(
            "INSERT INTO {0}.{1} AS b (account_id, balance, version)"
            " VALUES (%(id)s, %(delta)s, %(version)s) ON CONFLICT (account_id) DO UPDATE"
            " SET balance = b.balance + EXCLUDED.balance, version = EXCLUDED.version"
        ).format(*table)
        self.select = sql.SQL("SELECT account_id, balance FROM {0}.{1}").format(*table)

    def apply(self, account_id: UUID, delta: int, version: int, tracking: Tracking) -> None:
        """Add to a balance and record the tracking object, in one transaction."""
        with self.datastore.transaction(commit=True) as curs:
            params = {"id": account_id, "delta": delta, "version": version}
            curs.execute(self.upsert, params, prepare=True)
            self._insert_tracking(curs, tracking)

    def balances(self) -> dict[UUID, int]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.select)
            return {row["account_id"]: row["balance"] for row in curs.fetchall()}


class PeerBalances(Projection[PeerBalancesView]):
    """The projection the runner feeds: one balance row per account."""

    name = "peerbalances"
    # eventsourcing's @event makes PeerAccount.Opened etc. at run time: mypy cannot see them.
    topics = (
        get_topic(PeerAccount.Opened),  # type: ignore[attr-defined]
        get_topic(PeerAccount.Deposited),  # type: ignore[attr-defined]
        get_topic(PeerAccount.Withdrawn),  # type: ignore[attr-defined]
    )

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)

    @process_event.register(PeerAccount.Opened)  # type: ignore[attr-defined]
    def _(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.apply(domain_event.originator_id, 0, domain_event.originator_version, tracking)

    @process_event.register(PeerAccount.Deposited)  # type: ignore[attr-defined]
    def _(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.apply(
            domain_event.originator_id,
            domain_event.amount,
            domain_event.originator_version,
            tracking,
        )

    @process_event.register(PeerAccount.Withdrawn)  # type: ignore[attr-defined]
    def _(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.apply(
            domain_event.originator_id,
            -domain_event.amount,
            domain_event.originator_version,
            tracking,
        )


def peer_env(host: str, port: int, dbname: str, *, deepcopy: bool = False) -> dict[str, str]:
    """eventsourcing's configuration (its environment variables), passed explicitly."""
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": host,
        "POSTGRES_PORT": str(port),
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": "",
        # Cache on, as our Ledger's figure: decide on the cached aggregate and let the
        # (originator_id, version) key catch a concurrent writer, as our expected revision does.
        "AGGREGATE_CACHE_MAXSIZE": "1024",
        "AGGREGATE_CACHE_FASTFORWARD": "n",
        # The library's default is a deep copy of the cached aggregate on every load.
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "y" if deepcopy else "n",
        # A connection for each of the most callers, as each of our callers has the channel.
        "POSTGRES_POOL_SIZE": str(max(CALLERS)),
    }


def _show(conn: psycopg.Connection[Any], name: str) -> str:
    """A server setting as SHOW prints it (SHOW always returns one row)."""
    row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
    assert row is not None
    return str(row[0])


def check_durability(url: str) -> str:
    """The server settings that make a commit durable; refuse to measure without them."""
    with psycopg.connect(url) as conn:
        settings = {
            name: _show(conn, name) for name in ("fsync", "synchronous_commit", "wal_sync_method")
        }
    if settings["fsync"] != "on" or settings["synchronous_commit"] != "on":
        raise RuntimeError(f"the peer's PostgreSQL is not durable: {settings}")
    return ", ".join(f"{k}={v}" for k, v in settings.items())


def commands(results: Run, bank: PeerBank, n: int, durability: str, count: int, name: str) -> None:
    """Deposits and withdrawals by `count` threads on accounts of their own: the schedule and
    timing of the commands suite."""
    accounts = [open_accounts(bank, ACCOUNTS if count == 1 else 1) for _ in range(count)]
    done, elapsed = run_callers([bank] * count, accounts, n, f"{name}{count}")
    # The rules held: each account's balance is what the schedule implies.
    for own in accounts:
        per_account = n // count // len(own)
        withdrawals = sum(1 for i in range(per_account) if i % 3 == 2)
        expected = (per_account - withdrawals) * 525 - withdrawals * 300
        if (n // count) % len(own) == 0 and any(bank.balance(a) != expected for a in own):
            raise RuntimeError("the peer's balances are not what the commands imply")
    note = (
        f"{len(done):,} commands, {count} caller(s), eventsourcing 9.5 on PostgreSQL ({durability})"
    )
    suffix = "" if count == 1 else f"_{count}_callers"
    if name == "fair" and count == 1:
        results.series["peer_command_latencies_ms"] = [s * 1000 for s in done]
    results.record(f"{name_prefix(name)}commands_per_s{suffix}", len(done) / elapsed, note)
    results.record(f"{name_prefix(name)}command_p50_ms{suffix}", percentile(done, 50) * 1000, note)
    results.record(f"{name_prefix(name)}command_p99_ms{suffix}", percentile(done, 99) * 1000, note)


def name_prefix(name: str) -> str:
    """Figure names: `peer_...` for the fair peer, `peer_deepcopy_...` for the library default."""
    return "peer_deepcopy_" if name == "deepcopy" else "peer_"


def fill(bank: PeerBank, total: int) -> None:
    """Write accounts of deposits and withdrawals, SAVE_EVERY events per save, up to `total`."""
    written = 0
    while written < total:
        account = PeerAccount(
            account_id=f"fill-{uuid.uuid4().hex}", owner="Bench", currency="EUR", overdraft_limit=0
        )
        count = 1
        for i in range(1, min(10_000, total - written)):
            if i % 3 == 0:
                account.withdraw(300, f"t-{i}")
            else:
                account.deposit(i % 90 * 100 + 1025, f"t-{i}")
            count += 1
            if count % SAVE_EVERY == 0:
                bank.save(account)
        bank.save(account)
        written += count


def catch_up(results: Run, bank: PeerBank, env: dict[str, str], url: str) -> None:
    """Start the projection runner on an empty view; time it until it has tracked the head."""
    head = bank.recorder.max_notification_id() or 0
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM peerbank_events")).fetchone()
        events = int(row[0]) if row else 0
        probe = "SELECT notification_id FROM peerbalances_tracking WHERE application_name = %s"
        samples: list[tuple[float, int]] = [(0.0, 0)]
        start = time.perf_counter()
        with ProjectionRunner(
            application_class=PeerBank,
            projection_class=PeerBalances,
            view_class=PeerBalancesView,
            env=env,
        ) as runner:
            deadline = time.monotonic() + CATCH_UP_TIMEOUT
            while True:
                # Polled from a connection of our own: the runner's pool stays the runner's.
                try:
                    found = conn.execute(probe, (bank.name,)).fetchone()
                except psycopg.errors.UndefinedTable:
                    found = None
                done = int(found[0]) if found and found[0] is not None else 0
                now = time.perf_counter() - start
                if done != samples[-1][1]:
                    samples.append((now, done))
                if done >= head:
                    break
                if runner.is_interrupted.is_set():
                    runner.run_forever(timeout=0)  # raises the processing thread's error
                    raise RuntimeError("the peer's projection runner stopped")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the peer's projection did not reach {head}")
                time.sleep(0.01)
            elapsed = time.perf_counter() - start
            balances = runner.view.balances()
    # The view agrees with the write model for a sample of accounts.
    for account_id in list(balances)[:20]:
        account: PeerAccount = bank.repository.get(account_id)
        if account.balance != balances[account_id]:
            raise RuntimeError(f"the peer's view disagrees for {account_id}")
    results.series["peer_projection_progress"] = samples
    results.record(
        "peer_projection_events_per_s",
        events / elapsed,
        f"{events:,} events, ProjectionRunner from scratch, one balance table",
    )


def pg_limit(results: Run, bank: PeerBank, url: str) -> None:
    """The projection's writes by PostgreSQL alone, PG_LIMIT_BATCH events per transaction: the
    balance upserts and one tracking row per batch, events read and decoded before the clock."""
    head = bank.recorder.max_notification_id() or 0
    rows: list[tuple[UUID, int, int, int]] = []
    start_id = 1
    while start_id <= head:
        page = bank.recorder.select_notifications(start_id, 10_000)
        if not page:
            break
        for notification in page:
            domain_event: Any = bank.mapper.to_domain_event(notification)
            delta = getattr(domain_event, "amount", 0)
            if isinstance(domain_event, PeerAccount.Withdrawn):  # type: ignore[attr-defined]
                delta = -delta
            rows.append(
                (
                    domain_event.originator_id,
                    delta,
                    domain_event.originator_version,
                    notification.id,
                )
            )
        start_id = page[-1].id + 1
    upsert = (
        "INSERT INTO pg_limit_balances AS b (account_id, balance, version)"
        " VALUES (%s, %s, %s) ON CONFLICT (account_id) DO UPDATE"
        " SET balance = b.balance + EXCLUDED.balance, version = EXCLUDED.version"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE pg_limit_balances (account_id uuid PRIMARY KEY,"
            " balance bigint NOT NULL, version bigint NOT NULL)"
        )
        conn.execute("CREATE TABLE pg_limit_tracking (notification_id bigint PRIMARY KEY)")
        began = time.perf_counter()
        for first in range(0, len(rows), PG_LIMIT_BATCH):
            batch = rows[first : first + PG_LIMIT_BATCH]
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(upsert, [row[:3] for row in batch])
                cur.execute("INSERT INTO pg_limit_tracking VALUES (%s)", (batch[-1][3],))
        elapsed = time.perf_counter() - began
    results.record(
        "peer_projection_pg_limit_events_per_s",
        len(rows) / elapsed,
        f"{len(rows):,} events; PostgreSQL alone, the peer's balance upserts,"
        f" {PG_LIMIT_BATCH:,} events and one tracking row per transaction",
    )


def run(results: Run, full: bool) -> None:
    """Measure the peer on its own embedded PostgreSQL, in a database of its own."""
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
        home = Path(tmp)
        server = EmbeddedPostgres(home / "data", owner_dir=home)
        server.start()
        try:
            with psycopg.connect(server.url(), autocommit=True) as admin:
                admin.execute("CREATE DATABASE peer")
            url = server.url("peer")
            durability = check_durability(url)
            assert server.port is not None
            n = 10_000 if full else 2_000
            host = str(server.socket_dir)
            copying = PeerBank(env=peer_env(host, server.port, "peer", deepcopy=True))
            env = peer_env(host, server.port, "peer")
            bank = PeerBank(env=env)
            try:
                # The library's default (a deep copy per load) at one caller, then the fair
                # peer (no copy) at 1, 8 and 32 callers.
                commands(results, copying, n, durability, 1, "deepcopy")
                for count in CALLERS:
                    commands(results, bank, n, durability, count, "fair")
                total = 200_000 if full else 10_000
                have = bank.recorder.max_notification_id() or 0
                fill(bank, total - have)
                catch_up(results, bank, env, url)
                pg_limit(results, bank, url)
            finally:
                bank.close()
                copying.close()
        finally:
            server.stop()
