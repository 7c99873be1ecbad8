-- Chat messages airlock posted about a request (the review message, DMs),
-- one per purpose: a post is made once and later updated in place.
CREATE TABLE chat_messages (
    request_id BIGINT NOT NULL REFERENCES requests (id),
    purpose TEXT NOT NULL,
    channel TEXT NOT NULL,
    ts TEXT NOT NULL,
    posted_at BIGINT NOT NULL,
    PRIMARY KEY (request_id, purpose)
);

-- Interaction payloads already accepted (replay protection), kept for a while.
CREATE TABLE interaction_nonces (
    nonce TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
CREATE INDEX interaction_nonces_seen ON interaction_nonces (seen_at);

-- A request's messages are delivered in order: finding its oldest undelivered one is an index lookup.
CREATE INDEX outbox_request_pending ON outbox (request_id, id) WHERE done_at IS NULL;
