-- Streams, their events and the catalog. Text keys use the "C" collation so that id order is
-- byte order, the order the other backends list in.

-- One row per stream: its head version. Appends lock and advance it, which serialises
-- appenders to one stream and makes the expected-version check the database's.
CREATE TABLE streams (
    stream TEXT COLLATE "C" PRIMARY KEY,
    head BIGINT NOT NULL CHECK (head >= 0)
);

-- The events; the primary key is the backstop against two events at one version.
CREATE TABLE events (
    stream TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL CHECK (version >= 1),
    payload BYTEA NOT NULL,
    PRIMARY KEY (stream, version)
);

-- One entry per object, written in the transaction of the append that changes it.
CREATE TABLE catalog (
    kind SMALLINT NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    workspace TEXT COLLATE "C" NOT NULL,
    parent TEXT COLLATE "C",
    created_at BIGINT NOT NULL,
    archived BOOLEAN NOT NULL,
    name TEXT,
    agent_id TEXT COLLATE "C",
    agent_version BIGINT,
    status TEXT,
    PRIMARY KEY (kind, id)
);

CREATE INDEX catalog_listing ON catalog (kind, workspace, id);
