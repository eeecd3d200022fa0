-- Example targets and a notifier for the quick start (scripts/quickstart loads this when the
-- targets table is empty). Load by hand with:  mariadb skypunch < schema/example-data.sql
-- The first three point at the demo web server scripts/quickstart starts on 127.0.0.1:8080.

INSERT INTO targets (name, url, group_name) VALUES
    ('Demo home page', 'http://127.0.0.1:8080/', 'Demo site');

INSERT INTO targets (name, url, frequency, timeout, expect_body, group_name) VALUES
    ('Demo page content', 'http://127.0.0.1:8080/', 5, 3, 'Directory listing', 'Demo site');

INSERT INTO targets (name, url, frequency, pass_result, group_name) VALUES
    ('Demo missing page (expected 404)', 'http://127.0.0.1:8080/no-such-page', 10, 404, 'Demo site');

INSERT INTO targets (name, url, method, frequency, timeout, group_name) VALUES
    ('Nothing listening (fails)', 'http://127.0.0.1:9/', 'GET', 15, 2, 'Broken on purpose');

-- Disabled until you give it a real SMTP server: see `man skypunch` (NOTIFIERS).
INSERT INTO notifiers (name, type, address, params, enabled) VALUES
    ('Operations on call', 'SMTP', 'oncall@example.com', 'server=127.0.0.1,port=25,tls=none', 0);
