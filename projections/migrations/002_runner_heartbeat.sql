-- Per projection: the runner that holds it and its heartbeat, so that status can tell a live
-- runner from a dead one (whose last projection_status row would otherwise read as current).
CREATE TABLE projection_runners (
    projection   text PRIMARY KEY,
    runner_id    uuid NOT NULL,
    host         text NOT NULL,
    pid          integer NOT NULL,
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    interval_s   double precision NOT NULL CHECK (interval_s > 0),
    stopped_at   timestamptz
);
