-- Upgrades a skypunch 1.0 database (the original Python skypunch) to 2.0 in place.
-- Safe to run again after an interruption (IF NOT EXISTS, MariaDB syntax).
-- Run by `skypunch upgrade-db`, which checks the version first and runs this in the configured
-- database. Every row and counter is kept: columns are only given defaults and widened to
-- utf8mb4, and the new columns are added after the original ones.

ALTER TABLE targets CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
ALTER TABLE targets
    MODIFY name               VARCHAR(128)  NOT NULL DEFAULT '',
    MODIFY tenantid           VARCHAR(128)  NOT NULL DEFAULT '0',
    MODIFY status             VARCHAR(50)   NOT NULL DEFAULT 'NEW',
    MODIFY status_description VARCHAR(128)  NULL     DEFAULT NULL,
    MODIFY previous_status    VARCHAR(50)   NOT NULL DEFAULT 'NEW',
    MODIFY last_updated       TIMESTAMP     NOT NULL DEFAULT CURRENT_TIMESTAMP,
    MODIFY url                VARCHAR(256)  NOT NULL DEFAULT '',
    MODIFY method             VARCHAR(128)  NOT NULL DEFAULT 'GET',
    MODIFY authn              VARCHAR(128)  NOT NULL DEFAULT 'NONE',
    MODIFY authn_parms        VARCHAR(256)  NULL     DEFAULT '',
    MODIFY pass_result        INT           NOT NULL DEFAULT 200,
    MODIFY frequency          INT           NOT NULL DEFAULT 60,
    MODIFY timeout            INT           NOT NULL DEFAULT 10,
    MODIFY pass_count         BIGINT        NOT NULL DEFAULT 0,
    MODIFY fail_count         BIGINT        NOT NULL DEFAULT 0,
    MODIFY count200           BIGINT        NOT NULL DEFAULT 0,
    MODIFY count300           BIGINT        NOT NULL DEFAULT 0,
    MODIFY count400           BIGINT        NOT NULL DEFAULT 0,
    MODIFY count500           BIGINT        NOT NULL DEFAULT 0,
    MODIFY network_fails      BIGINT        NOT NULL DEFAULT 0,
    MODIFY repeated_fails     BIGINT        NOT NULL DEFAULT 0,
    MODIFY enabled            BOOLEAN       NOT NULL DEFAULT 1,
    ADD COLUMN IF NOT EXISTS request_body       TEXT          NULL     DEFAULT NULL COMMENT 'body sent with POST, PUT, PATCH (and any method) when not NULL',
    ADD COLUMN IF NOT EXISTS content_type       VARCHAR(128)  NULL     DEFAULT NULL COMMENT 'Content-Type of request_body, application/json when NULL',
    ADD COLUMN IF NOT EXISTS expect_body        VARCHAR(256)  NULL     DEFAULT NULL COMMENT 'when set, PASS also needs this text in the first max_body_bytes of the response body',
    ADD COLUMN IF NOT EXISTS max_response_ms    INT           NULL     DEFAULT NULL COMMENT 'when set, PASS also needs the whole check to take at most this many milliseconds',
    ADD COLUMN IF NOT EXISTS follow_redirects   BOOLEAN       NOT NULL DEFAULT 0    COMMENT '1: follow up to 10 redirects; 0: a 3xx is the result, as in 1.0',
    ADD COLUMN IF NOT EXISTS verify_tls         BOOLEAN       NOT NULL DEFAULT 1    COMMENT '0: accept any TLS certificate (self-signed test hosts)',
    ADD COLUMN IF NOT EXISTS fail_threshold     INT           NOT NULL DEFAULT 1    COMMENT 'consecutive failures before a FAIL alert is sent',
    ADD COLUMN IF NOT EXISTS alerted            BOOLEAN       NOT NULL DEFAULT 0    COMMENT 'set by the daemon: a FAIL alert is out, so a recovery alert is due on PASS',
    ADD COLUMN IF NOT EXISTS last_http_status   INT           NULL     DEFAULT NULL COMMENT 'set by the daemon: HTTP status of the last check, NULL when there was no response',
    ADD COLUMN IF NOT EXISTS last_response_ms   INT           NULL     DEFAULT NULL COMMENT 'set by the daemon: duration of the last check in milliseconds',
    ADD COLUMN IF NOT EXISTS last_trace         TEXT          NULL     DEFAULT NULL COMMENT 'set by the daemon: the trace of the last check',
    ADD COLUMN IF NOT EXISTS config_changed     TIMESTAMP(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
                                                COMMENT 'bumped by any UPDATE that does not set it; the daemon finds edited rows by it',
    ADD KEY IF NOT EXISTS targets_config_changed (config_changed),
    ADD KEY IF NOT EXISTS targets_enabled (enabled, id);

ALTER TABLE notifiers CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
ALTER TABLE notifiers
    MODIFY name               VARCHAR(128)  NOT NULL DEFAULT '',
    MODIFY type               VARCHAR(50)   NOT NULL DEFAULT 'SMTP',
    MODIFY address            VARCHAR(128)  NOT NULL DEFAULT '',
    MODIFY params             VARCHAR(128)  NOT NULL DEFAULT '',
    MODIFY pass_count         BIGINT        NOT NULL DEFAULT 0,
    MODIFY fail_count         BIGINT        NOT NULL DEFAULT 0,
    MODIFY enabled            BOOLEAN       NOT NULL DEFAULT 1;

-- `skypunch upgrade-db` then runs the table part of skypunch.sql, which creates the outbox
-- tables and records version 2.0; the 1.0 row goes last, so an upgrade cut short is retried.
