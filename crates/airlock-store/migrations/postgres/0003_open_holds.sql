-- At most one open (pending or approved) request per exact statement of a
-- requester on a target (SPEC §4.3), enforced by the store: a request
-- takes its row here in the transaction that creates it, and gives it back
-- in the compare-and-set that moves it out of pending/approved. Concurrent
-- holds of the same statement (two sessions, two replicas) then make one
-- request, whatever the order of their duplicate checks.
CREATE TABLE open_holds (
    target TEXT NOT NULL,
    requester TEXT NOT NULL,
    match_key TEXT NOT NULL,
    request_id BIGINT NOT NULL UNIQUE REFERENCES requests (id),
    PRIMARY KEY (target, requester, match_key)
);

-- Requests open before this migration: the newest of each statement holds it.
INSERT INTO open_holds (target, requester, match_key, request_id)
SELECT target, requester, match_key, MAX(id) FROM requests
WHERE status IN ('pending', 'approved')
GROUP BY target, requester, match_key;
