-- Leases (`Store::lease`): which runner drives a session, across processes. A row is kept
-- after its lease is released or lapses (`expires_at` in the past). Fencing tokens come from
-- one sequence for every lease, so a token is greater than every token granted before it,
-- whatever the lease (a forked session's log holds its parent's claims).
CREATE SEQUENCE lease_tokens;
CREATE TABLE leases (
    name TEXT COLLATE "C" PRIMARY KEY,
    holder TEXT NOT NULL,
    token BIGINT NOT NULL CHECK (token >= 1),
    expires_at TIMESTAMPTZ NOT NULL
);
