//! The throughput run (plain HTTP, `--tls`, `--mix`), on the main thread: starts what the
//! targets point at, makes `--rounds` rounds (each in [`round`]) and tears everything down;
//! the temp folder is kept after a failure, for its logs.

mod round;

use std::path::Path;

use crate::bench::args::{ServerKind, Settings};
use crate::bench::mix::{Service, Shape};
use crate::bench::report::Results;
use crate::bench::target::Server;
use crate::bench::tls::{KeyKind, Pki};
use crate::bench::Error;

/// What the targets of a run point at: the HTTP(S) server, the run's CA, and (`--mix`) the
/// slow and hanging services.
struct Setup {
    server: Server,
    pki: Option<Pki>,
    services: Option<(Service, Service)>,
}

impl Setup {
    fn start(s: &Settings, dir: &Path) -> Result<Setup, Error> {
        // A mix's HTTPS targets use the default key type.
        let key = s.tls.or(s.mix.then_some(KeyKind::Ecdsa));
        let pki = key.map(|k| Pki::make(dir, k)).transpose()?;
        let services = if s.mix {
            Some((Service::slow(shape(s).slow_after)?, Service::hanging()?))
        } else {
            None
        };
        let server = match s.server {
            ServerKind::Nginx => Server::nginx(dir, pki.as_ref()),
            ServerKind::Builtin => Server::builtin(pki.as_ref()),
        };
        match server {
            Ok(server) => Ok(Setup {
                server,
                pki,
                services,
            }),
            Err(e) => {
                if let Some((a, b)) = services {
                    a.stop();
                    b.stop();
                }
                Err(e)
            }
        }
    }

    fn https_url(&self) -> Option<String> {
        Some(format!("https://127.0.0.1:{}/", self.server.tls_port()?))
    }

    /// The URL blackbox_exporter probes: the HTTPS one in `--tls`, else plain HTTP.
    fn probed(&self) -> (String, Option<&Path>) {
        match (self.https_url(), &self.pki) {
            (Some(url), Some(pki)) => (url, Some(pki.ca_pem.as_path())),
            _ => (format!("http://127.0.0.1:{}/", self.server.port()), None),
        }
    }

    fn stop(self) {
        self.server.stop();
        if let Some((a, b)) = self.services {
            a.stop();
            b.stop();
        }
    }
}

fn shape(s: &Settings) -> Shape {
    if s.smoke {
        Shape::SMOKE
    } else {
        Shape::FULL
    }
}

/// Sets up the HTTP server and temp folder, makes `--rounds` rounds (each a fresh database,
/// the daemon, then blackbox_exporter), and tears them down whatever happened (the folder is
/// kept after a failure, for its logs).
pub fn run(s: &Settings, args: &[String]) -> Result<Vec<Results>, Error> {
    let dir = std::env::temp_dir().join(format!("skybench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let setup = Setup::start(s, &dir)?;
    let command = std::iter::once("skypunch-bench".to_string())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut rounds = Vec::new();
    let mut result = Ok(());
    for round in 1..=s.rounds {
        if s.rounds > 1 {
            eprintln!("skypunch-bench: round {round} of {}", s.rounds);
        }
        match round::one_round(s, &setup, &dir, round) {
            Ok(mut r) => {
                r.command = command.clone();
                rounds.push(r);
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    setup.stop();
    match (&result, s.keep) {
        (Ok(_), false) => {
            let _ = std::fs::remove_dir_all(&dir);
        }
        _ => eprintln!("skypunch-bench: logs and configs kept in {}", dir.display()),
    }
    result.map(|()| rounds)
}
