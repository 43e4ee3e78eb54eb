-- The audit trail: every change to the registry and every security event, written in the
-- transaction of the change it records, kept for the configured retention. Listed newest first
-- (by id) and filtered by time, kind and actor.
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    client_id TEXT,
    address TEXT,
    subject TEXT NOT NULL,
    details TEXT NOT NULL
);
CREATE INDEX audit_events_by_at ON audit_events (at);
CREATE INDEX audit_events_by_kind ON audit_events (kind, id);
CREATE INDEX audit_events_by_actor ON audit_events (actor, id);
