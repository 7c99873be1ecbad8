-- airlock state store, version 1: change requests, approvals, executions,
-- audit chain, outbox. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE requests (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status TEXT NOT NULL,
    requester TEXT NOT NULL,
    team TEXT NOT NULL,
    groups_json TEXT NOT NULL,
    application_name TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    target TEXT NOT NULL,
    family TEXT,
    environment TEXT NOT NULL,
    engine TEXT NOT NULL,
    statement TEXT NOT NULL,
    params BYTEA NOT NULL,
    match_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    class TEXT NOT NULL,
    statement_count BIGINT NOT NULL,
    transactional BIGINT NOT NULL,
    tables_json TEXT NOT NULL,
    summary TEXT NOT NULL,
    ai_summary TEXT,
    risk TEXT NOT NULL,
    risk_reasons_json TEXT NOT NULL,
    row_estimate DOUBLE PRECISION,
    earlier_runs_json TEXT NOT NULL,
    reason TEXT,
    description TEXT,
    rollback_sql TEXT,
    max_rows BIGINT,
    approvals_required BIGINT NOT NULL,
    approver_groups_json TEXT NOT NULL,
    run_window_ms BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    approved_at BIGINT,
    run_deadline BIGINT,
    decided_by TEXT,
    decided_at BIGINT,
    decision_reason TEXT,
    run_by TEXT,
    run_started_at BIGINT,
    run_finished_at BIGINT,
    run_rows BIGINT,
    run_tag TEXT,
    run_duration_ms BIGINT,
    run_error TEXT,
    run_xid TEXT,
    rb_by TEXT,
    rb_started_at BIGINT,
    rb_finished_at BIGINT,
    rb_rows BIGINT,
    rb_tag TEXT,
    rb_duration_ms BIGINT,
    rb_error TEXT,
    rb_xid TEXT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX requests_status ON requests (status);
CREATE INDEX requests_requester ON requests (requester, id);
CREATE INDEX requests_target ON requests (target, id);
CREATE INDEX requests_match ON requests (match_key, target, requester);
CREATE INDEX requests_pending_expiry ON requests (expires_at) WHERE status = 'pending';
CREATE INDEX requests_run_deadline ON requests (run_deadline) WHERE status = 'approved';

-- One row per distinct approver of a request.
CREATE TABLE approvals (
    request_id BIGINT NOT NULL REFERENCES requests (id),
    approver TEXT NOT NULL,
    at BIGINT NOT NULL,
    via TEXT NOT NULL,
    comment TEXT,
    PRIMARY KEY (request_id, approver)
);

-- Every non-read statement run through the proxy on any target (earlier runs).
CREATE TABLE executions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id BIGINT,
    family TEXT,
    target TEXT NOT NULL,
    environment TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    username TEXT NOT NULL,
    class TEXT NOT NULL,
    rows_affected BIGINT,
    duration_ms BIGINT NOT NULL,
    success BIGINT NOT NULL,
    error TEXT,
    at BIGINT NOT NULL
);
CREATE INDEX executions_lookup ON executions (family, fingerprint, environment, at);

-- The hash-chained audit trail. payload is stored byte for byte (TEXT, not JSON types).
CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    request_id BIGINT,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_events_request ON audit_events (request_id);

-- The chain's head, one row: locking it serializes every audited write.
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Notifications to deliver (Slack), claimed with a lease.
CREATE TABLE outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic TEXT NOT NULL,
    request_id BIGINT,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    available_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT,
    done_at BIGINT,
    last_error TEXT
);
CREATE INDEX outbox_ready ON outbox (available_at, id) WHERE done_at IS NULL;

-- Named leases (one replica drains the outbox at a time).
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until_at BIGINT NOT NULL
);
