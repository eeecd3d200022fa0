-- skypunch schema 2.2 (or older, after the earlier upgrades) to 2.3: what `skypunch upgrade-db`
-- runs, after creating the tables that are new in 2.3 from skypunch.sql. Safe to run again.
-- Load by hand with:  mariadb skypunch < schema/upgrade-2.2-to-2.3.sql
-- Not in this file: upgrade-db also redacts the URLs that older releases stored as typed
-- (alerts.snapshot and alerts.trace, targets.last_trace), which takes a URL parser; after
-- loading this file by hand, run `skypunch upgrade-db` once for that.

INSERT INTO versions (major, minor) VALUES (2, 3) ON DUPLICATE KEY UPDATE minor = 3;
