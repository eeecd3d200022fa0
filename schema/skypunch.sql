-- skypunch database schema, version 2.3.
--
-- Safe to load more than once: nothing is dropped, every object is created only when absent.
-- Load it with:   mariadb -u root < schema/skypunch.sql
-- An existing 1.0 or 2.0 database is upgraded with
--   skypunch upgrade-db
-- not by this file.

CREATE DATABASE IF NOT EXISTS skypunch DEFAULT CHARACTER SET utf8mb4 DEFAULT COLLATE utf8mb4_general_ci;
USE skypunch;

CREATE TABLE IF NOT EXISTS versions (
    major INT NOT NULL,
    minor INT NOT NULL,
    PRIMARY KEY (major)
) DEFAULT CHARSET utf8mb4;

INSERT IGNORE INTO versions (major, minor) VALUES (2, 3);

CREATE TABLE IF NOT EXISTS targets (
    -- The original (1.0) columns, in their original order.
    id                 BIGINT        NOT NULL AUTO_INCREMENT,
    name               VARCHAR(128)  NOT NULL DEFAULT '',
    tenantid           VARCHAR(128)  NOT NULL DEFAULT '0',
    status             VARCHAR(50)   NOT NULL DEFAULT 'NEW',
    status_description VARCHAR(128)  NULL     DEFAULT NULL,
    previous_status    VARCHAR(50)   NOT NULL DEFAULT 'NEW',
    last_updated       TIMESTAMP     NOT NULL DEFAULT CURRENT_TIMESTAMP,
    url                VARCHAR(256)  NOT NULL DEFAULT '',
    method             VARCHAR(128)  NOT NULL DEFAULT 'GET',
    authn              VARCHAR(128)  NOT NULL DEFAULT 'NONE',
    authn_parms        VARCHAR(256)  NULL     DEFAULT '',
    pass_result        INT           NOT NULL DEFAULT 200,
    frequency          INT           NOT NULL DEFAULT 60,
    timeout            INT           NOT NULL DEFAULT 10,
    pass_count         BIGINT        NOT NULL DEFAULT 0,
    fail_count         BIGINT        NOT NULL DEFAULT 0,
    count200           BIGINT        NOT NULL DEFAULT 0,
    count300           BIGINT        NOT NULL DEFAULT 0,
    count400           BIGINT        NOT NULL DEFAULT 0,
    count500           BIGINT        NOT NULL DEFAULT 0,
    network_fails      BIGINT        NOT NULL DEFAULT 0,
    repeated_fails     BIGINT        NOT NULL DEFAULT 0,
    enabled            BOOLEAN       NOT NULL DEFAULT 1,
    -- Columns added in 2.0.
    request_body       TEXT          NULL     DEFAULT NULL COMMENT 'body sent with POST, PUT, PATCH (and any method) when not NULL',
    content_type       VARCHAR(128)  NULL     DEFAULT NULL COMMENT 'Content-Type of request_body, application/json when NULL',
    expect_body        VARCHAR(256)  NULL     DEFAULT NULL COMMENT 'when set, PASS also needs this text in the first max_body_bytes of the response body',
    max_response_ms    INT           NULL     DEFAULT NULL COMMENT 'when set, PASS also needs the whole check to take at most this many milliseconds',
    follow_redirects   BOOLEAN       NOT NULL DEFAULT 0    COMMENT '1: follow up to 10 redirects; 0: a 3xx is the result, as in 1.0',
    verify_tls         BOOLEAN       NOT NULL DEFAULT 1    COMMENT '0: accept any TLS certificate (self-signed test hosts)',
    fail_threshold     INT           NOT NULL DEFAULT 1    COMMENT 'consecutive failures before a FAIL alert is sent',
    alerted            BOOLEAN       NOT NULL DEFAULT 0    COMMENT 'set by the daemon: a FAIL alert is out, so a recovery alert is due on PASS',
    last_http_status   INT           NULL     DEFAULT NULL COMMENT 'set by the daemon: HTTP status of the last check, NULL when there was no response',
    last_response_ms   INT           NULL     DEFAULT NULL COMMENT 'set by the daemon: duration of the last check in milliseconds',
    last_trace         TEXT          NULL     DEFAULT NULL COMMENT 'set by the daemon: the trace of the last check',
    -- Columns added in 2.2.
    state_seq          BIGINT        NOT NULL DEFAULT 0    COMMENT 'set by the daemon: +1 with every result written; each write is conditional on it, so two daemons never both write a state change',
    success_threshold  INT           NOT NULL DEFAULT 1    COMMENT 'consecutive passes, after a FAIL alert, before the SUCCESS alert (flap control)',
    repeated_passes    BIGINT        NOT NULL DEFAULT 0    COMMENT 'set by the daemon: consecutive passes now; 0 after a failure',
    realert_minutes    INT           NOT NULL DEFAULT 0    COMMENT 'while the target stays failed, a REMINDER alert every this many minutes; 0: none',
    last_alerted       TIMESTAMP(3)  NULL     DEFAULT NULL COMMENT 'set by the daemon: when the last FAILURE or REMINDER alert was queued (UTC)',
    ca_file            VARCHAR(512)  NULL     DEFAULT NULL COMMENT 'PEM bundle of CA certificates trusted for this target besides the public roots ([settings] CaFile when NULL)',
    cert_warn_days     INT           NOT NULL DEFAULT 14   COMMENT 'a CERTIFICATE alert once the TLS certificate expires within this many days; 0: none',
    cert_expires_at    DATETIME      NULL     DEFAULT NULL COMMENT 'set by the daemon: expiry (UTC) of the leaf certificate of the last TLS handshake; NULL for http:// targets',
    cert_issuer        VARCHAR(256)  NULL     DEFAULT NULL COMMENT 'set by the daemon: issuer of that certificate',
    cert_alerted_for   DATETIME      NULL     DEFAULT NULL COMMENT 'set by the daemon: expiry of the certificate the last CERTIFICATE alert was about',
    group_name         VARCHAR(128)  NULL     DEFAULT NULL COMMENT 'a group the target belongs to (the JSON API gives it); NULL: none',
    public             BOOLEAN       NOT NULL DEFAULT 0    COMMENT '1: shown in the JSON API when [http] PublicOnly is on',
    config_changed     TIMESTAMP(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
                                              COMMENT 'bumped by any UPDATE that does not set it; the daemon finds edited rows by it',
    -- Columns added in 2.3.
    created_at         TIMESTAMP(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
                                              COMMENT 'when the row was inserted (UTC); uptime counts from here (2.3: the upgrade set it to the row''s oldest history)',
    conditions         TEXT          NULL     DEFAULT NULL COMMENT 'one condition per line, all must hold (Gatus syntax: [STATUS] == 200, [BODY].status == ok, ...); one naming [STATUS] replaces pass_result',
    request_headers    TEXT          NULL     DEFAULT NULL COMMENT 'Name: value per line, sent with every request of the check (not with token requests); ${secret:NAME} allowed',
    client_cert        VARCHAR(512)  NULL     DEFAULT NULL COMMENT 'PEM file of the client certificate presented for mutual TLS (with its key when client_key is NULL)',
    client_key         VARCHAR(512)  NULL     DEFAULT NULL COMMENT 'PEM file of the private key of client_cert',
    proxy_url          VARCHAR(256)  NULL     DEFAULT NULL COMMENT 'http://[user:pass@]host:port the check goes through (CONNECT for https); NULL: [settings] Proxy',
    ip_family          VARCHAR(8)    NOT NULL DEFAULT 'any' COMMENT 'any, 4 or 6: the address family the check connects over',
    push_token         VARCHAR(64)   NULL     DEFAULT NULL COMMENT 'PUSH targets: the secret of /push/TOKEN; the daemon fills a random one when NULL',
    depends_on         BIGINT        NULL     DEFAULT NULL COMMENT 'the id of the target this one depends on (its switch, its database): while that one is in FAIL, this one''s failures are recorded but alert nobody; NULL: none',
    last_phases        VARCHAR(192)  NULL     DEFAULT NULL COMMENT 'set by the daemon: seconds each phase of the last check took, JSON {"dns":..,"connect":..,"tls":..,"request":..,"first_byte":..,"body":..}; NULL when it sent no request',
    last_push_at       TIMESTAMP(6)  NULL     DEFAULT NULL COMMENT 'set by the daemon: when the last /push/TOKEN request of this PUSH target came (UTC)',
    last_push_status   VARCHAR(8)    NULL     DEFAULT NULL COMMENT 'set by the daemon: PASS, or FAIL for a push with status=fail',
    last_push_msg      VARCHAR(128)  NULL     DEFAULT NULL COMMENT 'set by the daemon: the msg= of the last push, made printable and cut to 120 characters',
    push_count         BIGINT        NOT NULL DEFAULT 0    COMMENT 'set by the daemon: pushes received (+1 each), by which every node tells a new push',
    PRIMARY KEY (id),
    KEY targets_config_changed (config_changed),
    KEY targets_enabled (enabled, id),
    -- Each node reads the pushes of the last seconds by this, once a second.
    KEY targets_last_push (last_push_at),
    -- /push/TOKEN finds its target by this; two rows never share a token.
    CONSTRAINT targets_push_token UNIQUE (push_token),
    -- The loader reads the dependencies (and the children of a parent) by this.
    KEY targets_depends_on (depends_on)
) DEFAULT CHARSET utf8mb4;

CREATE TABLE IF NOT EXISTS notifiers (
    id                 BIGINT        NOT NULL AUTO_INCREMENT,
    name               VARCHAR(128)  NOT NULL DEFAULT '',
    type               VARCHAR(50)   NOT NULL DEFAULT 'SMTP',
    address            VARCHAR(128)  NOT NULL DEFAULT '',
    params             VARCHAR(128)  NOT NULL DEFAULT '',
    pass_count         BIGINT        NOT NULL DEFAULT 0,
    fail_count         BIGINT        NOT NULL DEFAULT 0,
    enabled            BOOLEAN       NOT NULL DEFAULT 1,
    PRIMARY KEY (id)
) DEFAULT CHARSET utf8mb4;

-- The outbox. An alert is written in the same transaction as the target state change that
-- caused it, with a snapshot of what the message shows, so a restart or an SMTP outage loses
-- nothing. One delivery row per (alert, notifier) tracks each recipient on its own.
CREATE TABLE IF NOT EXISTS alerts (
    id                 BIGINT        NOT NULL AUTO_INCREMENT,
    target_id          BIGINT        NOT NULL,
    kind               VARCHAR(16)   NOT NULL COMMENT 'FAILURE or SUCCESS',
    created_at         TIMESTAMP(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    snapshot           TEXT          NOT NULL COMMENT 'JSON: the target row and check result as they were at the state change',
    trace              TEXT          NOT NULL,
    expanded           BOOLEAN       NOT NULL DEFAULT 0 COMMENT '1 once a delivery row exists for every notifier enabled at that time',
    PRIMARY KEY (id),
    KEY alerts_expanded (expanded),
    KEY alerts_target (target_id, id) COMMENT '2.3: a target''s alerts, for the outbox''s per-alert rules'
) DEFAULT CHARSET utf8mb4;

CREATE TABLE IF NOT EXISTS alert_deliveries (
    alert_id           BIGINT        NOT NULL,
    notifier_id        BIGINT        NOT NULL,
    state              VARCHAR(16)   NOT NULL DEFAULT 'PENDING' COMMENT 'PENDING, SENT, or DROPPED (its notifier was deleted)',
    attempts           INT           NOT NULL DEFAULT 0,
    next_attempt       TIMESTAMP(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) COMMENT 'PENDING: when it is next due; SENT (2.3) or DROPPED: when that was decided',
    last_error         VARCHAR(512)  NULL     DEFAULT NULL,
    sent_at            TIMESTAMP(3)  NULL     DEFAULT NULL,
    claimed_by         VARCHAR(64)   NULL     DEFAULT NULL COMMENT '2.2: the node sending it now',
    claim_until        TIMESTAMP(3)  NULL     DEFAULT NULL COMMENT '2.2: after this another node may take the delivery over',
    group_id           BIGINT        NULL     DEFAULT NULL COMMENT '2.3: the smallest alert id of the grouped message it went (or goes) out in; NULL: a message of its own',
    PRIMARY KEY (alert_id, notifier_id),
    KEY deliveries_due (state, next_attempt),
    KEY deliveries_notifier (notifier_id, state, next_attempt) COMMENT '2.3: what one notifier is owed, and when it was last sent something',
    KEY deliveries_group (notifier_id, group_id) COMMENT '2.3: the alerts of one grouped message'
) DEFAULT CHARSET utf8mb4;

-- History (2.1). Times are UTC.
--
-- One row per FAIL period of a target: opened by the first failed check, in the same
-- transaction as the state change, and closed by the first passing one. A period shorter
-- than fail_threshold is an incident that did not alert. open_target holds the target id
-- while the incident is open, so a target has at most one open incident.
CREATE TABLE IF NOT EXISTS incidents (
    id                 BIGINT        NOT NULL AUTO_INCREMENT,
    target_id          BIGINT        NOT NULL,
    started            TIMESTAMP(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) COMMENT 'the first failed check',
    ended              TIMESTAMP(3)  NULL     DEFAULT NULL COMMENT 'the first passing check; NULL while it lasts',
    first_reason       VARCHAR(128)  NOT NULL DEFAULT '',
    last_reason        VARCHAR(128)  NOT NULL DEFAULT '',
    failed_checks      BIGINT        NOT NULL DEFAULT 0,
    alerted            BOOLEAN       NOT NULL DEFAULT 0 COMMENT '1 once the FAILURE alert went out (fail_threshold reached)',
    http_status        INT           NULL     DEFAULT NULL COMMENT 'the last HTTP status seen in it, NULL when no response came',
    open_target        BIGINT        AS (IF(ended IS NULL, target_id, NULL)) PERSISTENT,
    suppressed_by      BIGINT        NULL     DEFAULT NULL COMMENT '2.3: the incident of the parent (depends_on) that was open when this one''s FAILURE was held; NULL: not held for a parent',
    monitor_blind      BOOLEAN       NOT NULL DEFAULT 0 COMMENT '2.3: 1 when its FAILURE was held because the node checking it could not reach its network',
    unconfirmed        BOOLEAN       NOT NULL DEFAULT 0 COMMENT '2.3: 1 when a second node checked the target as its FAILURE became due and found it up: nobody was paged',
    PRIMARY KEY (id),
    UNIQUE KEY incidents_open (open_target),
    KEY incidents_target (target_id, started),
    KEY incidents_started (started),
    KEY incidents_ended (ended)
) DEFAULT CHARSET utf8mb4;

-- Periods a target was disabled: left out of its uptime, and shown as such.
CREATE TABLE IF NOT EXISTS target_pauses (
    id                 BIGINT        NOT NULL AUTO_INCREMENT,
    target_id          BIGINT        NOT NULL,
    started            TIMESTAMP(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    ended              TIMESTAMP(3)  NULL     DEFAULT NULL,
    open_target        BIGINT        AS (IF(ended IS NULL, target_id, NULL)) PERSISTENT,
    PRIMARY KEY (id),
    UNIQUE KEY pauses_open (open_target),
    KEY pauses_target (target_id, started)
) DEFAULT CHARSET utf8mb4;

-- Per target and UTC hour (target_hours) or day (target_days): added to by the daemon at most
-- once a minute per target. Response times fall in fixed buckets (upper bounds in ms: 10, 25,
-- 50, 100, 250, 500, 1000, 2500, 5000, 10000, above), so rows add up across hours and daemons
-- and percentiles are read from the sums.
CREATE TABLE IF NOT EXISTS target_hours (
    target_id          BIGINT        NOT NULL,
    hour               DATETIME      NOT NULL COMMENT 'the hour''s start, UTC',
    checks             BIGINT        NOT NULL DEFAULT 0,
    failures           BIGINT        NOT NULL DEFAULT 0,
    fail_seconds       DOUBLE        NOT NULL DEFAULT 0 COMMENT 'seconds of the hour spent in FAIL',
    response_ms_sum    BIGINT        NOT NULL DEFAULT 0,
    response_ms_max    INT           NOT NULL DEFAULT 0,
    b10 INT NOT NULL DEFAULT 0, b25 INT NOT NULL DEFAULT 0, b50 INT NOT NULL DEFAULT 0,
    b100 INT NOT NULL DEFAULT 0, b250 INT NOT NULL DEFAULT 0, b500 INT NOT NULL DEFAULT 0,
    b1000 INT NOT NULL DEFAULT 0, b2500 INT NOT NULL DEFAULT 0, b5000 INT NOT NULL DEFAULT 0,
    b10000 INT NOT NULL DEFAULT 0, b_over INT NOT NULL DEFAULT 0,
    PRIMARY KEY (target_id, hour),
    KEY hours_hour (hour)
) DEFAULT CHARSET utf8mb4;

CREATE TABLE IF NOT EXISTS target_days (
    target_id          BIGINT        NOT NULL,
    day                DATE          NOT NULL COMMENT 'UTC',
    checks             BIGINT        NOT NULL DEFAULT 0,
    failures           BIGINT        NOT NULL DEFAULT 0,
    fail_seconds       DOUBLE        NOT NULL DEFAULT 0,
    response_ms_sum    BIGINT        NOT NULL DEFAULT 0,
    response_ms_max    INT           NOT NULL DEFAULT 0,
    b10 INT NOT NULL DEFAULT 0, b25 INT NOT NULL DEFAULT 0, b50 INT NOT NULL DEFAULT 0,
    b100 INT NOT NULL DEFAULT 0, b250 INT NOT NULL DEFAULT 0, b500 INT NOT NULL DEFAULT 0,
    b1000 INT NOT NULL DEFAULT 0, b2500 INT NOT NULL DEFAULT 0, b5000 INT NOT NULL DEFAULT 0,
    b10000 INT NOT NULL DEFAULT 0, b_over INT NOT NULL DEFAULT 0,
    PRIMARY KEY (target_id, day),
    KEY days_day (day)
) DEFAULT CHARSET utf8mb4;

-- Cluster (2.2): the daemons sharing this database. Each row is one live daemon ("node"); its
-- heartbeat is the database clock. A node whose heartbeat is older than [cluster] DeadAfter is
-- deleted by the others (with its node_fences row), which then share its targets.
CREATE TABLE IF NOT EXISTS nodes (
    name               VARCHAR(64)   NOT NULL COMMENT '[cluster] NodeName, the host name by default',
    epoch              BIGINT        NOT NULL COMMENT 'new each time the node joins',
    host               VARCHAR(255)  NOT NULL DEFAULT '',
    pid                INT           NOT NULL DEFAULT 0,
    version            VARCHAR(32)   NOT NULL DEFAULT '',
    started            TIMESTAMP(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    heartbeat          TIMESTAMP(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    state              VARCHAR(16)   NOT NULL DEFAULT 'active' COMMENT 'active; stopping (its targets already handed over); blind (2.3: it cannot reach its network, the others check its targets); skewed (2.3: its clock is past [cluster] MaxClockSkew from the database''s, the others check its targets)',
    targets_owned      INT           NOT NULL DEFAULT 0,
    checks_per_s       DOUBLE        NOT NULL DEFAULT 0,
    clock_offset_ms    INT           NULL DEFAULT NULL COMMENT '2.3: the node''s clock minus the database''s at its last heartbeat, ms; NULL: not measured',
    PRIMARY KEY (name)
) DEFAULT CHARSET utf8mb4;

-- Every transaction of results a node writes first updates its row here, by name and epoch:
-- once the others have deleted it (declaring the node dead), the node cannot write. A table
-- of its own, so that the heartbeat (on nodes) never waits for a long result transaction.
CREATE TABLE IF NOT EXISTS node_fences (
    name               VARCHAR(64)   NOT NULL,
    epoch              BIGINT        NOT NULL,
    batches            BIGINT        NOT NULL DEFAULT 0 COMMENT 'result transactions written under this epoch',
    PRIMARY KEY (name)
) DEFAULT CHARSET utf8mb4;

-- Confirmations (2.3, [cluster] ConfirmFailures): a FAILURE due on one node is checked again
-- at once by another live node before anybody is paged. The node whose check failed inserts
-- the row in the transaction that raised the FAILURE (instead of the alert); another node
-- takes it (claimed_by), checks the target and writes its answer; the node that asked (or,
-- once it is long past its deadline, any node) resolves it in one transaction: the alert goes
-- to the outbox with both checks' traces, or the incident is marked unconfirmed.
CREATE TABLE IF NOT EXISTS confirmations (
    id                 BIGINT        NOT NULL AUTO_INCREMENT,
    target_id          BIGINT        NOT NULL,
    incident_id        BIGINT        NULL     DEFAULT NULL COMMENT 'the incident the FAILURE was raised in',
    requested_by       VARCHAR(64)   NOT NULL COMMENT 'the node whose check failed',
    requested_at       TIMESTAMP(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    deadline           TIMESTAMP(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) COMMENT 'past this without an answer, the alert goes out unconfirmed (5 s plus the target''s timeout)',
    snapshot           TEXT          NOT NULL COMMENT 'the alert''s snapshot (JSON), taken when the FAILURE was raised',
    trace              TEXT          NOT NULL COMMENT 'the trace of the check that failed',
    claimed_by         VARCHAR(64)   NULL     DEFAULT NULL COMMENT 'the node checking the target again',
    answer             VARCHAR(8)    NULL     DEFAULT NULL COMMENT 'what that check found: PASS, FAIL, or NONE (it could not check: answer_trace says why)',
    answer_trace       TEXT          NULL     DEFAULT NULL,
    answered_at        TIMESTAMP(3)  NULL     DEFAULT NULL,
    state              VARCHAR(16)   NOT NULL DEFAULT 'PENDING' COMMENT 'PENDING; CONFIRMED (the second check failed too: the alert went out); UNCONFIRMED (it passed, or the target recovered first: nobody paged); NOT_CONFIRMED (no answer in time: the alert went out as without confirmation)',
    resolved_at        TIMESTAMP(3)  NULL     DEFAULT NULL,
    note               VARCHAR(255)  NOT NULL DEFAULT '' COMMENT 'how it was resolved, in words',
    open_target        BIGINT        AS (IF(state = 'PENDING', target_id, NULL)) PERSISTENT,
    PRIMARY KEY (id),
    UNIQUE KEY confirmations_pending (open_target),
    KEY confirmations_state (state, deadline),
    KEY confirmations_resolved (resolved_at)
) DEFAULT CHARSET utf8mb4;

-- Routing (2.2): which notifiers hear of a target. A target with no row here alerts every
-- enabled notifier (the original's rule); one with rows alerts only those (when enabled).
CREATE TABLE IF NOT EXISTS target_notifiers (
    target_id          BIGINT        NOT NULL,
    notifier_id        BIGINT        NOT NULL,
    PRIMARY KEY (target_id, notifier_id),
    KEY target_notifiers_notifier (notifier_id)
) DEFAULT CHARSET utf8mb4;

-- Maintenance windows (2.2): during one, checks go on and are recorded, but no alert is sent
-- for its targets; a target still failing when it ends alerts then. Reports leave the time
-- out of uptime, like a disabled period. `skypunch maintenance add|list|end` manage them.
CREATE TABLE IF NOT EXISTS maintenance (
    id                 BIGINT        NOT NULL AUTO_INCREMENT,
    target_id          BIGINT        NULL     DEFAULT NULL COMMENT 'NULL: every target',
    starts             TIMESTAMP(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    ends               TIMESTAMP(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    reason             VARCHAR(255)  NOT NULL DEFAULT '',
    PRIMARY KEY (id),
    KEY maintenance_ends (ends)
) DEFAULT CHARSET utf8mb4;
