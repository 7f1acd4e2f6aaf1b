-- The read models and the runner's bookkeeping. Amounts are integer minor units.
CREATE TABLE account_balances (
    account_id      text PRIMARY KEY,
    owner           text,
    currency        text,
    balance         bigint,
    overdraft_limit bigint,
    status          text,
    last_revision   bigint NOT NULL,
    last_position   bigint NOT NULL,
    updated_at      timestamptz NOT NULL
);

CREATE TABLE account_statements (
    account_id     text NOT NULL,
    revision       bigint NOT NULL,
    position       bigint NOT NULL,
    event_id       uuid NOT NULL,
    transaction_id text NOT NULL,
    kind           text NOT NULL,
    amount         bigint NOT NULL,
    balance_after  bigint NOT NULL,
    description    text NOT NULL,
    occurred_at    timestamptz NOT NULL,
    PRIMARY KEY (account_id, revision)
);
CREATE INDEX account_statements_by_time ON account_statements (account_id, occurred_at);
CREATE INDEX account_statements_by_position ON account_statements (account_id, position);

CREATE TABLE daily_totals (
    currency  text NOT NULL,
    day       date NOT NULL,
    deposited bigint NOT NULL DEFAULT 0,
    withdrawn bigint NOT NULL DEFAULT 0,
    reversed  bigint NOT NULL DEFAULT 0,
    count     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (currency, day)
);

-- Per projection: the $all position it has applied up to (forward-only).
CREATE TABLE projection_checkpoints (
    projection text PRIMARY KEY,
    position   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Per projection and account: the last stream revision applied, and whether it is parked.
CREATE TABLE projection_accounts (
    projection    text NOT NULL,
    account_id    text NOT NULL,
    last_revision bigint NOT NULL,
    parked        boolean NOT NULL DEFAULT false,
    PRIMARY KEY (projection, account_id)
);

-- Events a projection could not apply, with every later event of the same account.
CREATE TABLE parked_events (
    projection   text NOT NULL,
    account_id   text NOT NULL,
    revision     bigint NOT NULL,
    position     bigint NOT NULL,
    event_id     uuid NOT NULL,
    event_type   text NOT NULL,
    data         bytea NOT NULL,
    metadata     bytea NOT NULL,
    recorded_at  timestamptz NOT NULL,
    error        text NOT NULL,
    parked_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, account_id, revision)
);

-- What the runner last saw, so that status needs no call to the event store.
CREATE TABLE projection_status (
    projection    text PRIMARY KEY,
    head_position bigint NOT NULL DEFAULT 0,
    lag_events    bigint NOT NULL DEFAULT 0,
    lag_capped    boolean NOT NULL DEFAULT false,
    lag_seconds   double precision NOT NULL DEFAULT 0,
    caught_up     boolean NOT NULL DEFAULT false,
    runner_pid    integer,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
