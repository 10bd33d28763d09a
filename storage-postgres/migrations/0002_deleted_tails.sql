-- The last events of each deleted stream, kept for a while after the delete so that a
-- subscriber in another process that had not read them yet (a `session.deleted` appended
-- just before its session's delete, say) still receives them before its subscription ends.
-- A delete replaces the stream's earlier tail and purges tails older than ten minutes.
CREATE TABLE deleted_tails (
    stream TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL CHECK (version >= 1),
    payload BYTEA NOT NULL,
    deleted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, version)
);
CREATE INDEX deleted_tails_age ON deleted_tails (deleted_at);
