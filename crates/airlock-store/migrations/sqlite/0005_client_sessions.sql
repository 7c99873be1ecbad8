-- Which replica owns which client session (the backend key airlock gave
-- the client), so a CancelRequest reaching another replica is forwarded to
-- the owner. Rows of a replica that died are dropped when it starts again
-- at the same address; a stale row only sends a cancel nowhere.
CREATE TABLE client_sessions (
    pid INTEGER NOT NULL,
    secret INTEGER NOT NULL,
    owner TEXT NOT NULL,
    registered_at BIGINT NOT NULL,
    PRIMARY KEY (pid, secret)
);
CREATE INDEX client_sessions_owner ON client_sessions (owner);
