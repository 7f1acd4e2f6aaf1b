-- Every runner process, active or standing by: status shows which runner (host, pid) is active
-- for each projection and which stand by. projection_runners keeps the active one per projection.
CREATE TABLE runner_instances (
    runner_id    uuid PRIMARY KEY,
    host         text NOT NULL,
    pid          integer NOT NULL,
    slots        text[] NOT NULL,
    role         text NOT NULL CHECK (role IN ('active', 'standby')),
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    interval_s   double precision NOT NULL CHECK (interval_s > 0),
    stopped_at   timestamptz
);
