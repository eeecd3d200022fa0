//! Several hosts in `[database] Location`: the daemon uses the first that answers, and when
//! the one in use dies, moves to the next (a Galera cluster without a proxy).

use std::time::Duration;

use crate::support::http::HttpServer;
use crate::support::mariadb::MariaDb;
use crate::support::{server, wait_for, Daemon, TestDb};

fn checks_written(db: &TestDb) -> u64 {
    db.one::<Option<u64>>("SELECT CAST(SUM(pass_count + fail_count) AS UNSIGNED) FROM targets")
        .unwrap_or(0)
}

#[test]
fn a_host_that_does_not_answer_is_skipped_and_the_next_one_used() {
    let db = TestDb::new();
    let closed = crate::support::servers::ClosedPort::new();
    let main = server();
    db.write_config(&format!(
        "StatsInterval: 0\n[database]\nConnectTimeout: 1\nLocation: 127.0.0.1:{},{}:{}",
        closed.port, main.host, main.port
    ));
    let web = HttpServer::start(200);
    db.add_watched("api", &web.url("/"));
    let _daemon = Daemon::start(&db);
    wait_for(Duration::from_secs(10), "a check written", || {
        (checks_written(&db) > 0).then_some(())
    });
    let log = db.log();
    let in_use = format!("{}:{}", main.host, main.port);
    assert!(
        log.contains(&format!(
            "database: 127.0.0.1:{} did not answer (",
            closed.port
        )),
        "{log}"
    );
    assert!(log.contains(&format!("now using {in_use}")), "{log}");
    assert!(log.contains(&format!("(using {in_use}), config")), "{log}");
}

#[test]
fn when_the_host_in_use_dies_the_daemon_moves_to_the_next_and_goes_on_writing() {
    let mut first = MariaDb::start();
    let on_first = TestDb::new_on(first.server());
    let on_second = TestDb::named_on(server(), &on_first.name);
    let second = server();
    on_first.write_config(&format!(
        "StatsInterval: 0\n[database]\nConnectTimeout: 1\nReadTimeout: 2\n\
         Location: 127.0.0.1:{},{}:{}",
        first.port, second.host, second.port
    ));
    let web = HttpServer::start(200);
    for db in [&on_first, &on_second] {
        db.add_watched("api", &web.url("/"));
    }
    let _daemon = Daemon::start(&on_first);
    wait_for(Duration::from_secs(10), "checks on the first host", || {
        (checks_written(&on_first) >= 2).then_some(())
    });
    assert_eq!(checks_written(&on_second), 0);

    first.kill();
    wait_for(Duration::from_secs(20), "checks on the second host", || {
        (checks_written(&on_second) >= 2).then_some(())
    });
    let log = on_first.log();
    let moved = format!("database: 127.0.0.1:{} did not answer (", first.port);
    assert!(log.contains(&moved), "{log}");
    assert!(log.contains(&format!("now using {}:{}", second.host, second.port)));
}
