-- skypunch schema 2.2 (or older, after the earlier upgrades) to 2.3: what `skypunch upgrade-db`
-- runs, after creating the tables that are new in 2.3 from skypunch.sql. Safe to run again.
-- Load by hand with:  mariadb skypunch < schema/upgrade-2.2-to-2.3.sql
-- Not in this file: upgrade-db also redacts the URLs that older releases stored as typed
-- (alerts.snapshot and alerts.trace, targets.last_trace), which takes a URL parser; after
-- loading this file by hand, run `skypunch upgrade-db` once for that.

-- The history tables mix TIMESTAMP (incidents, pauses) and UTC DATETIME/DATE (rollups)
-- columns: compared in UTC, they agree whatever the server's time zone is.
SET time_zone = '+00:00';

-- Uptime counts from created_at: time before a target existed is no data, not up. Rows that
-- exist already get the upgrade's time here, then the oldest history they have below.
ALTER TABLE targets
    ADD COLUMN IF NOT EXISTS created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
        COMMENT 'when the row was inserted (UTC); uptime counts from here (2.3: the upgrade set it to the row''s oldest history)';

-- The oldest incident, disabled period, hourly or daily rollup of each row (index lookups
-- on the tables' target keys). LEAST only moves created_at back, so a second run changes
-- nothing; history dated before 1970 (hand-made rows), which a TIMESTAMP cannot hold, counts
-- as 1970-01-02. config_changed is kept: the rows' settings did not change.
UPDATE targets t SET t.config_changed = t.config_changed,
    t.created_at = GREATEST(TIMESTAMP '1970-01-02 00:00:00', LEAST(t.created_at,
    COALESCE((SELECT MIN(i.started) FROM incidents i WHERE i.target_id = t.id), t.created_at),
    COALESCE((SELECT MIN(p.started) FROM target_pauses p WHERE p.target_id = t.id), t.created_at),
    COALESCE((SELECT MIN(h.hour) FROM target_hours h WHERE h.target_id = t.id), t.created_at),
    COALESCE((SELECT MIN(d.day) FROM target_days d WHERE d.target_id = t.id), t.created_at)));

-- Issue 26's columns: conditions on the answer, request headers, client certificates,
-- proxies, the address family, heartbeat (PUSH) targets. NULL or 'any' keep every check as
-- it was.
ALTER TABLE targets
    ADD COLUMN IF NOT EXISTS conditions TEXT NULL DEFAULT NULL
        COMMENT 'one condition per line, all must hold (Gatus syntax: [STATUS] == 200, [BODY].status == ok, ...); one naming [STATUS] replaces pass_result',
    ADD COLUMN IF NOT EXISTS request_headers TEXT NULL DEFAULT NULL
        COMMENT 'Name: value per line, sent with every request of the check (not with token requests); ${secret:NAME} allowed',
    ADD COLUMN IF NOT EXISTS client_cert VARCHAR(512) NULL DEFAULT NULL
        COMMENT 'PEM file of the client certificate presented for mutual TLS (with its key when client_key is NULL)',
    ADD COLUMN IF NOT EXISTS client_key VARCHAR(512) NULL DEFAULT NULL
        COMMENT 'PEM file of the private key of client_cert',
    ADD COLUMN IF NOT EXISTS proxy_url VARCHAR(256) NULL DEFAULT NULL
        COMMENT 'http://[user:pass@]host:port the check goes through (CONNECT for https); NULL: [settings] Proxy',
    ADD COLUMN IF NOT EXISTS ip_family VARCHAR(8) NOT NULL DEFAULT 'any'
        COMMENT 'any, 4 or 6: the address family the check connects over',
    ADD COLUMN IF NOT EXISTS push_token VARCHAR(64) NULL DEFAULT NULL
        COMMENT 'PUSH targets: the secret of /push/TOKEN; the daemon fills a random one when NULL',
    ADD UNIQUE KEY IF NOT EXISTS targets_push_token (push_token);

-- Alert storms (2.3): the outbox's per-alert rules look a target's alerts up by target and
-- id; the notifier reads what one notifier is owed, and when it last sent it something, by
-- notifier; a grouped message's deliveries carry its id (the smallest alert id in it).
CREATE INDEX IF NOT EXISTS alerts_target ON alerts (target_id, id)
    COMMENT '2.3: a target''s alerts, for the outbox''s per-alert rules';
ALTER TABLE alert_deliveries
    ADD COLUMN IF NOT EXISTS group_id BIGINT NULL DEFAULT NULL
        COMMENT '2.3: the smallest alert id of the grouped message it went (or goes) out in; NULL: a message of its own' AFTER claim_until;
CREATE INDEX IF NOT EXISTS deliveries_notifier ON alert_deliveries (notifier_id, state, next_attempt)
    COMMENT '2.3: what one notifier is owed, and when it was last sent something';
CREATE INDEX IF NOT EXISTS deliveries_group ON alert_deliveries (notifier_id, group_id)
    COMMENT '2.3: the alerts of one grouped message';

-- Pages people can trust (2.3): a target may depend on another (its switch, its database),
-- whose failure holds its alerts; an incident says which parent incident held its FAILURE,
-- or that the node checking it could not reach its network.
ALTER TABLE targets
    ADD COLUMN IF NOT EXISTS depends_on BIGINT NULL DEFAULT NULL
        COMMENT 'the id of the target this one depends on (its switch, its database): while that one is in FAIL, this one''s failures are recorded but alert nobody; NULL: none',
    ADD KEY IF NOT EXISTS targets_depends_on (depends_on);
ALTER TABLE incidents
    ADD COLUMN IF NOT EXISTS suppressed_by BIGINT NULL DEFAULT NULL
        COMMENT '2.3: the incident of the parent (depends_on) that was open when this one''s FAILURE was held; NULL: not held for a parent',
    ADD COLUMN IF NOT EXISTS monitor_blind BOOLEAN NOT NULL DEFAULT 0
        COMMENT '2.3: 1 when its FAILURE was held because the node checking it could not reach its network',
    ADD COLUMN IF NOT EXISTS unconfirmed BOOLEAN NOT NULL DEFAULT 0
        COMMENT '2.3: 1 when a second node checked the target as its FAILURE became due and found it up: nobody was paged';
-- A node that cannot reach its network beats as `blind`, one whose clock is too far from the
-- database's as `skewed`, and the others check its targets; each heartbeat says the offset.
ALTER TABLE nodes
    MODIFY COLUMN state VARCHAR(16) NOT NULL DEFAULT 'active'
        COMMENT 'active; stopping (its targets already handed over); blind (2.3: it cannot reach its network, the others check its targets); skewed (2.3: its clock is past [cluster] MaxClockSkew from the database''s, the others check its targets)',
    ADD COLUMN IF NOT EXISTS clock_offset_ms INT NULL DEFAULT NULL
        COMMENT '2.3: the node''s clock minus the database''s at its last heartbeat, ms; NULL: not measured' AFTER checks_per_s;
-- What the daemon keeps of the last check's phases and of the last push of a PUSH target.
ALTER TABLE targets
    ADD COLUMN IF NOT EXISTS last_phases VARCHAR(192) NULL DEFAULT NULL
        COMMENT 'set by the daemon: seconds each phase of the last check took, JSON {"dns":..,"connect":..,"tls":..,"request":..,"first_byte":..,"body":..}; NULL when it sent no request',
    ADD COLUMN IF NOT EXISTS last_push_at TIMESTAMP(6) NULL DEFAULT NULL
        COMMENT 'set by the daemon: when the last /push/TOKEN request of this PUSH target came (UTC)',
    ADD COLUMN IF NOT EXISTS last_push_status VARCHAR(8) NULL DEFAULT NULL
        COMMENT 'set by the daemon: PASS, or FAIL for a push with status=fail',
    ADD COLUMN IF NOT EXISTS last_push_msg VARCHAR(128) NULL DEFAULT NULL
        COMMENT 'set by the daemon: the msg= of the last push, made printable and cut to 120 characters',
    ADD COLUMN IF NOT EXISTS push_count BIGINT NOT NULL DEFAULT 0
        COMMENT 'set by the daemon: pushes received (+1 each), by which every node tells a new push',
    ADD KEY IF NOT EXISTS targets_last_push (last_push_at);

INSERT INTO versions (major, minor) VALUES (2, 3) ON DUPLICATE KEY UPDATE minor = 3;
