-- skypunch schema 2.1 (or 2.0) to 2.2: what `skypunch upgrade-db` runs, after creating the
-- tables that are new in 2.2 (nodes, node_fences) from skypunch.sql. Safe to run again.
-- Load by hand with:  mariadb skypunch < schema/upgrade-2.1-to-2.2.sql

ALTER TABLE targets
    ADD COLUMN IF NOT EXISTS state_seq BIGINT NOT NULL DEFAULT 0
        COMMENT 'set by the daemon: +1 with every result written; each write is conditional on it, so two daemons never both write a state change'
        AFTER last_trace,
    ADD COLUMN IF NOT EXISTS success_threshold INT NOT NULL DEFAULT 1
        COMMENT 'consecutive passes, after a FAIL alert, before the SUCCESS alert (flap control)'
        AFTER state_seq,
    ADD COLUMN IF NOT EXISTS repeated_passes BIGINT NOT NULL DEFAULT 0
        COMMENT 'set by the daemon: consecutive passes now; 0 after a failure'
        AFTER success_threshold,
    ADD COLUMN IF NOT EXISTS realert_minutes INT NOT NULL DEFAULT 0
        COMMENT 'while the target stays failed, a REMINDER alert every this many minutes; 0: none'
        AFTER repeated_passes,
    ADD COLUMN IF NOT EXISTS last_alerted TIMESTAMP(3) NULL DEFAULT NULL
        COMMENT 'set by the daemon: when the last FAILURE or REMINDER alert was queued (UTC)'
        AFTER realert_minutes,
    ADD COLUMN IF NOT EXISTS ca_file VARCHAR(512) NULL DEFAULT NULL
        COMMENT 'PEM bundle of CA certificates trusted for this target besides the public roots ([settings] CaFile when NULL)'
        AFTER last_alerted,
    ADD COLUMN IF NOT EXISTS cert_warn_days INT NOT NULL DEFAULT 14
        COMMENT 'a CERTIFICATE alert once the TLS certificate expires within this many days; 0: none'
        AFTER ca_file,
    ADD COLUMN IF NOT EXISTS cert_expires_at DATETIME NULL DEFAULT NULL
        COMMENT 'set by the daemon: expiry (UTC) of the leaf certificate of the last TLS handshake; NULL for http:// targets'
        AFTER cert_warn_days,
    ADD COLUMN IF NOT EXISTS cert_issuer VARCHAR(256) NULL DEFAULT NULL
        COMMENT 'set by the daemon: issuer of that certificate'
        AFTER cert_expires_at,
    ADD COLUMN IF NOT EXISTS cert_alerted_for DATETIME NULL DEFAULT NULL
        COMMENT 'set by the daemon: expiry of the certificate the last CERTIFICATE alert was about'
        AFTER cert_issuer,
    ADD COLUMN IF NOT EXISTS group_name VARCHAR(128) NULL DEFAULT NULL
        COMMENT 'a group the target belongs to (the JSON API gives it); NULL: none'
        AFTER cert_alerted_for,
    ADD COLUMN IF NOT EXISTS public BOOLEAN NOT NULL DEFAULT 0
        COMMENT '1: shown in the JSON API when [http] PublicOnly is on'
        AFTER group_name;

ALTER TABLE alert_deliveries
    ADD COLUMN IF NOT EXISTS claimed_by VARCHAR(64) NULL DEFAULT NULL
        COMMENT '2.2: the node sending it now' AFTER sent_at,
    ADD COLUMN IF NOT EXISTS claim_until TIMESTAMP(3) NULL DEFAULT NULL
        COMMENT '2.2: after this another node may take the delivery over' AFTER claimed_by;

INSERT INTO versions (major, minor) VALUES (2, 2) ON DUPLICATE KEY UPDATE minor = 2;
