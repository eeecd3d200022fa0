//! The daemon's lifecycle with the real binary and a real MariaDB: start (detached), the pid
//! file and its lock, status, SIGHUP after a log rotation, stop with every in-flight result
//! written, start-up failures reported on the terminal, and the init script.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::lifecycle::*;
use crate::support::servers::ClosedPort;
use crate::support::{skypunch_cmd, stderr, stdout, wait_for, Daemon, TestDb};

const LIMIT: Duration = Duration::from_secs(30);

/// A config for `db` whose database is at 127.0.0.1 on `port`.
fn config_with_db_port(db: &TestDb, port: u16) -> PathBuf {
    let text = std::fs::read_to_string(db.config_path()).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("port:") {
                format!("port: {port}\n")
            } else if l.starts_with("Location:") {
                "Location: 127.0.0.1\nConnectTimeout: 2\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let path = db.dir.join("unreachable.conf");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn start_status_hup_stop_keeps_every_result() {
    let db = TestDb::new();
    let server = slow_http_server(Duration::from_millis(300));
    let id = db.add_target(
        "name, url, frequency, timeout",
        &format!("'lifecycle', 'http://{server}/', 1, 5"),
    );

    let out = db.cli(&["start"]);
    assert_eq!(code(&out), 0, "start: {}", stderr(&out));
    let pid = started_pid(&out);
    let _daemon = Daemon::detached(pid);

    // The pid file names the daemon and is locked.
    let pid_file = db.pid_path();
    let written = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(written.trim(), pid.to_string());
    assert!(is_locked(&pid_file), "the pid file is not locked");

    // Detached: another session, working folder /, stdio on /dev/null.
    // SAFETY: getsid only reads.
    let (theirs, ours) = unsafe { (libc::getsid(pid), libc::getsid(0)) };
    assert_ne!(theirs, ours, "the daemon is still in the test's session");
    assert_ne!(theirs, pid, "the daemon leads its session (no second fork)");
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    assert_eq!(cwd, Path::new("/"));
    for fd in 0..=2 {
        let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
        assert_eq!(target, Path::new("/dev/null"), "fd {fd}");
    }

    // A second start is refused with the first one's pid.
    let again = db.cli(&["start"]);
    assert_eq!(code(&again), 1);
    assert!(
        stderr(&again).contains(&format!("skypunch is already running (pid {pid})")),
        "{}",
        stderr(&again)
    );
    assert!(alive(pid));

    let status = db.cli(&["status"]);
    assert_eq!(code(&status), 0, "{}", stderr(&status));
    let text = stdout(&status);
    assert!(
        text.contains(&format!("skypunch is running (pid {pid}, up ")),
        "{text}"
    );
    assert!(text.contains("targets: 1 total, "), "{text}");
    assert!(text.contains(" 0 disabled"), "{text}");

    // The log grows with check lines.
    wait_for(LIMIT, "two check lines", || {
        (check_lines(&db.log(), id) >= 2).then_some(())
    });

    // logrotate moves the file away, then asks for a reopen.
    let rotated = db.dir.join("skypunch.log.1");
    std::fs::rename(db.log_path(), &rotated).unwrap();
    let reload = db.cli(&["reload"]);
    assert_eq!(code(&reload), 0, "{}", stderr(&reload));
    wait_for(LIMIT, "a check line in the new log file", || {
        (check_lines(&db.log(), id) >= 1).then_some(())
    });
    assert!(
        db.log().contains("SIGHUP: configuration re-read"),
        "{}",
        db.log()
    );
    // Plain SIGHUP (what systemd's ExecReload sends) works the same.
    std::fs::rename(db.log_path(), db.dir.join("skypunch.log.2")).unwrap();
    signal(pid, libc::SIGHUP);
    wait_for(LIMIT, "a reopened log file after SIGHUP", || {
        db.log_path().exists().then_some(())
    });

    let stop = db.cli(&["stop"]);
    assert_eq!(code(&stop), 0, "stop: {}", stderr(&stop));
    assert!(
        stdout(&stop).contains(&format!("skypunch stopped (pid {pid})")),
        "{}",
        stdout(&stop)
    );
    assert!(!pid_file.exists(), "the pid file is still there");
    assert!(!alive(pid), "the daemon is still running");

    // Every check that was logged was also written, the ones in flight at SIGTERM included.
    let logs = [
        std::fs::read_to_string(&rotated).unwrap(),
        std::fs::read_to_string(db.dir.join("skypunch.log.2")).unwrap(),
        db.log(),
    ];
    let logged: usize = logs.iter().map(|l| check_lines(l, id)).sum();
    let (pass, fail): (u64, u64) = db.one(&format!(
        "SELECT pass_count, fail_count FROM targets WHERE id = {id}"
    ));
    assert_eq!(
        (pass + fail) as usize,
        logged,
        "results written vs check lines logged"
    );
    assert!(db.log().contains("skypunch stopped"), "{}", db.log());

    let status = db.cli(&["status"]);
    assert_eq!(code(&status), 3, "{}", stdout(&status));
    assert!(stdout(&status).contains("skypunch is not running"));
}

#[test]
fn a_bad_config_file_fails_on_the_terminal_with_file_and_line() {
    let db = TestDb::new();
    db.write_config("Workers: many");
    let out = db.cli(&["start"]);
    assert_ne!(code(&out), 0);
    let err = stderr(&out);
    let expected = format!(
        "{}:6: bad value `many` for [settings] Workers",
        db.config_path().display()
    );
    assert!(err.contains(&expected), "{err}");
    assert!(!db.pid_path().exists());
}

#[test]
fn an_unreachable_database_fails_on_the_terminal_naming_host_and_port() {
    let db = TestDb::new();
    let closed = ClosedPort::new();
    let config = config_with_db_port(&db, closed.port);
    let out = skypunch_cmd(&config, &["start"]).output().unwrap();
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("cannot connect to database"), "{err}");
    assert!(
        err.contains(&format!("@127.0.0.1:{}/", closed.port)),
        "{err}"
    );
    assert!(!db.pid_path().exists(), "a failed start left its pid file");
    // The daemon side logged it too.
    assert!(
        db.log().contains("not started: cannot connect"),
        "{}",
        db.log()
    );
}

#[test]
fn waiting_for_the_database_can_be_stopped() {
    let db = TestDb::new();
    let closed = ClosedPort::new();
    let config = config_with_db_port(&db, closed.port);
    let out = skypunch_cmd(&config, &["--wait", "start"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let pid = started_pid(&out);
    let _daemon = Daemon::detached(pid);
    assert!(
        stdout(&out).contains("waiting for the database"),
        "{}",
        stdout(&out)
    );
    let status = skypunch_cmd(&config, &["status"]).output().unwrap();
    assert_eq!(code(&status), 0);
    assert!(
        stdout(&status).contains("targets: unknown (cannot connect"),
        "{}",
        stdout(&status)
    );
    let stop = skypunch_cmd(&config, &["stop"]).output().unwrap();
    assert_eq!(code(&stop), 0, "{}", stderr(&stop));
    assert!(!alive(pid));
    assert!(!db.pid_path().exists());
}

#[test]
fn an_empty_database_says_to_run_init_db() {
    let db = TestDb::empty();
    let out = db.cli(&["start"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("skypunch init-db"),
        "{}",
        stderr(&out)
    );
    assert!(!db.pid_path().exists());
}

#[test]
fn foreground_takes_the_lock_and_stops_on_sigterm() {
    let db = TestDb::new();
    let mut daemon = Daemon::spawn(&db, &[], &[]);
    let pid = daemon.pid();
    wait_for(LIMIT, "the foreground daemon's pid file", || {
        let text = std::fs::read_to_string(db.pid_path()).ok()?;
        (text.trim() == pid.to_string()).then_some(())
    });
    assert!(is_locked(&db.pid_path()));
    wait_for(LIMIT, "the started line", || {
        db.log().contains("started:").then_some(())
    });
    let again = db.cli(&["--foreground", "start"]);
    assert_eq!(code(&again), 1);
    assert!(stderr(&again).contains(&format!("skypunch is already running (pid {pid})")));

    daemon.signal(libc::SIGTERM);
    let (code, _) = daemon.exit_within(LIMIT);
    assert_eq!(code, Some(0));
    assert!(!db.pid_path().exists());
}

#[test]
fn stop_and_status_without_a_daemon_and_with_a_stale_pid_file() {
    let db = TestDb::new();
    let stop = db.cli(&["stop"]);
    assert_eq!(code(&stop), 0);
    assert!(stdout(&stop).contains("skypunch is not running"));
    let status = db.cli(&["status"]);
    assert_eq!(code(&status), 3);
    assert!(stdout(&status).contains("targets: 0 total, 0 PASS, 0 FAIL, 0 NEW, 0 disabled"));
    let reload = db.cli(&["reload"]);
    assert_eq!(code(&reload), 7);

    // A daemon killed with SIGKILL leaves its file behind, unlocked.
    std::fs::write(db.pid_path(), "999999\n").unwrap();
    let status = db.cli(&["status"]);
    assert_eq!(code(&status), 1, "{}", stdout(&status));
    assert!(stdout(&status).contains("pid file"), "{}", stdout(&status));
    let stop = db.cli(&["stop"]);
    assert_eq!(code(&stop), 0);
    assert!(
        stdout(&stop).contains("removed the stale pid file"),
        "{}",
        stdout(&stop)
    );
    assert!(!db.pid_path().exists());

    // And a new daemon takes over a stale file.
    std::fs::write(db.pid_path(), "999999\n").unwrap();
    let out = db.cli(&["start"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let pid = started_pid(&out);
    let _daemon = Daemon::detached(pid);
    assert_eq!(code(&db.cli(&["stop"])), 0);
}

#[test]
fn stop_gives_up_after_its_timeout_and_says_so() {
    let db = TestDb::new();
    let pid_file = db.pid_path();
    // A stand-in daemon that holds the lock and ignores SIGTERM.
    let script = format!(
        "trap '' TERM; echo $$ > '{0}'; exec sleep 60",
        pid_file.display()
    );
    let mut holder = Command::new("flock")
        .arg(&pid_file)
        .args(["sh", "-c", &script])
        .spawn()
        .unwrap();
    let pid: i32 = wait_for(LIMIT, "the stand-in's pid", || {
        let text = std::fs::read_to_string(&pid_file).ok()?;
        text.trim().parse().ok()
    });
    let out = db.cli(&["--timeout", "1", "stop"]);
    signal(pid, libc::SIGKILL);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!("skypunch (pid {pid}) has not exited after 1 s")),
        "{}",
        stderr(&out)
    );
}

fn init_script(db: &TestDb, action: &str) -> Output {
    Command::new("sh")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/etc/init.d/skypunch"))
        .arg(action)
        .env("DAEMON", env!("CARGO_BIN_EXE_skypunch"))
        .env("CONFIG", db.config_path())
        .env("SKYPUNCH_DEFAULTS", db.dir.join("no-defaults"))
        // The user comes from the defaults file only: a USER left in the environment (after
        // `su` without `-`) must not be taken for it.
        .env("USER", "nobody")
        .env_remove("SKYPUNCH_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn the_init_script_starts_reports_reloads_and_stops() {
    let db = TestDb::new();
    let start = init_script(&db, "start");
    assert_eq!(code(&start), 0, "{}", stderr(&start));
    let pid = started_pid(&start);
    let _daemon = Daemon::detached(pid);
    let again = init_script(&db, "start");
    assert_eq!(code(&again), 0, "LSB: starting a running service succeeds");
    assert!(stdout(&again).contains("already running"));

    let status = init_script(&db, "status");
    assert_eq!(code(&status), 0);
    assert!(stdout(&status).contains(&format!("skypunch is running (pid {pid}")));
    assert_eq!(code(&init_script(&db, "reload")), 0);

    let restart = init_script(&db, "restart");
    assert_eq!(code(&restart), 0, "{}", stderr(&restart));
    let new_pid = started_pid(&restart);
    let _restarted = Daemon::detached(new_pid);
    assert!(!alive(pid));

    let stop = init_script(&db, "stop");
    assert_eq!(code(&stop), 0, "{}", stderr(&stop));
    assert!(!alive(new_pid));
    let status = init_script(&db, "status");
    assert_eq!(code(&status), 3);
    assert_eq!(code(&init_script(&db, "bogus")), 2);
}

#[test]
fn log_file_dash_writes_journal_lines_to_stderr() {
    let db = TestDb::new();
    let web = crate::support::http::HttpServer::start(200);
    db.write_config("StatsInterval: 0");
    // Every line of the config but LogFilePath, which becomes `-`.
    let text = std::fs::read_to_string(db.config_path()).unwrap();
    let text = text.replace(
        &format!("LogFilePath: {}", db.log_path().display()),
        "LogFilePath: -",
    );
    std::fs::write(db.config_path(), text).unwrap();
    let up = db.add_watched("up", &web.url("/"));
    let down = crate::support::servers::ClosedPort::new();
    let refused = db.add_watched("down", &format!("http://127.0.0.1:{}/", down.port));
    let detached = db.cli(&["start"]);
    assert_eq!(code(&detached), 1);
    assert!(
        stderr(&detached).contains("--foreground"),
        "{}",
        stderr(&detached)
    );

    let daemon = Daemon::spawn(&db, &[], &[]);
    let journal = || crate::support::run::stderr(&db);
    wait_for(LIMIT, "a PASS and a FAIL line on stderr", || {
        let text = journal();
        (text.contains(&format!(" [{up}] up")) && text.contains(&format!(" [{refused}] down")))
            .then_some(())
    });
    assert_eq!(daemon.stop(), Some(0));
    let text = journal();
    for line in text.lines() {
        assert!(
            ["<3>", "<4>", "<6>", "<7>"]
                .iter()
                .any(|p| line.starts_with(p)),
            "every line has its priority: {line}"
        );
    }
    let pass = text
        .lines()
        .find(|l| l.contains(&format!(" [{up}] up")))
        .unwrap();
    assert!(
        pass.starts_with("<6>") && pass.contains(" INFO ") && pass.contains(" PASS ("),
        "{pass}"
    );
    let fail = text
        .lines()
        .find(|l| l.contains(&format!(" [{refused}] down")))
        .unwrap();
    assert!(
        fail.starts_with("<3>") && fail.contains(" ERROR ") && fail.contains(" FAIL ("),
        "{fail}"
    );
    assert!(!db.log_path().exists(), "no log file");
}
