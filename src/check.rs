//! One HTTP check of one target, on a worker thread. (Interim version; the full check with
//! per-phase timings and authentication lands from the checks branch.)

use std::io::Read;
use std::time::{Duration, Instant};

use crate::model::{CheckOutcome, Target, Verdict};
use crate::trace::Trace;

pub struct CheckSettings {
    pub max_body_bytes: u64,
    pub token_lifetime: Duration,
}

pub struct Checker {
    agent: ureq::Agent,
    settings: CheckSettings,
}

impl Checker {
    pub fn new(settings: CheckSettings) -> Checker {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_idle_connections(0)
            .build()
            .new_agent();
        Checker { agent, settings }
    }

    pub fn check(&self, target: &Target) -> CheckOutcome {
        let mut trace = Trace::new();
        let start = Instant::now();
        let req = self
            .agent
            .get(&target.url)
            .header("Connection", "close")
            .config()
            .timeout_global(Some(target.timeout))
            .build();
        let (verdict, description, status) = match req.call() {
            Ok(mut res) => {
                let code = res.status().as_u16();
                trace.step(format!("response {code}"));
                let mut body = Vec::new();
                let _ = res
                    .body_mut()
                    .as_reader()
                    .take(self.settings.max_body_bytes)
                    .read_to_end(&mut body);
                if code == target.pass_result {
                    (
                        Verdict::Pass,
                        res.status().canonical_reason().unwrap_or("OK").to_string(),
                        Some(code),
                    )
                } else {
                    (
                        Verdict::Fail,
                        format!("expected {}, got {code}", target.pass_result),
                        Some(code),
                    )
                }
            }
            Err(e) => (Verdict::Fail, e.to_string(), None),
        };
        if verdict == Verdict::Fail {
            trace.fail(&description);
        }
        CheckOutcome {
            verdict,
            description,
            http_status: status,
            elapsed: start.elapsed(),
            trace,
        }
    }
}

pub fn redact_url(url: &str) -> String {
    url.to_string()
}
