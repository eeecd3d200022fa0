//! The verdict of a check, on the worker thread: whether what the target answered is what it
//! wants (`pass_result`, `expect_body`, `max_response_ms`, `conditions`), or which of them it
//! is not. Pure.

use std::time::Duration;

use ureq::http::HeaderMap;

use crate::base::conditions::ResponseView;
use crate::base::model::{CheckError, Target};
use crate::base::redactor::Redactor;

/// What the target answered.
pub(super) struct Answer {
    pub status: u16,
    /// The body when `expect_body` or a condition needs it.
    pub body: Option<Vec<u8>>,
    /// The response's headers when the target has conditions (empty otherwise).
    pub headers: HeaderMap,
    /// From sending the (last) request to the end of its body.
    pub took: Duration,
    /// Milliseconds until the leaf certificate expires, when a condition asks.
    pub cert_left_ms: Option<i64>,
}

/// PASS when the status, the body, the time and the conditions are as the target wants;
/// otherwise says which one was not. A condition naming `[STATUS]` judges the status instead
/// of `pass_result`; `redactor` masks the `[secrets]` in what a failed condition quotes.
pub(super) fn judge(
    target: &Target,
    answer: &Answer,
    redactor: &Redactor,
) -> Result<u16, CheckError> {
    let status = answer.status;
    let conditions = target.conditions.as_deref();
    let status_judged = conditions.is_some_and(|c| c.names_status());
    if !status_judged && status != target.pass_result {
        return Err(CheckError::Status {
            expected: target.pass_result,
            got: status,
        });
    }
    if let (Some(want), Some(body)) = (&target.expect_body, &answer.body) {
        if !String::from_utf8_lossy(body).contains(want.as_str()) {
            return Err(CheckError::BodyLacks {
                status,
                expected: want.clone(),
            });
        }
    }
    if let Some(max) = target.max_response_ms {
        let ms = answer.took.as_millis();
        if ms > u128::from(max) {
            return Err(CheckError::TooSlow {
                status,
                took_ms: ms,
                max_ms: max,
            });
        }
    }
    if let Some(conditions) = conditions {
        let view = ResponseView {
            status,
            headers: &answer.headers,
            body: answer.body.as_deref().unwrap_or_default(),
            response_time: answer.took,
            cert_left_ms: answer.cert_left_ms,
        };
        conditions
            .evaluate(&view, redactor)
            .map_err(|failed| CheckError::Condition {
                status,
                description: failed.description,
            })?;
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::base::conditions::Conditions;

    fn target() -> Target {
        Target {
            expect_body: Some("healthy".into()),
            max_response_ms: Some(500),
            ..Target::new(1, "http://127.0.0.1/")
        }
    }

    fn answer(status: u16, body: &str, ms: u64) -> Answer {
        Answer {
            status,
            body: Some(body.as_bytes().to_vec()),
            headers: HeaderMap::new(),
            took: Duration::from_millis(ms),
            cert_left_ms: None,
        }
    }

    fn judged(t: &Target, a: &Answer) -> Result<u16, CheckError> {
        judge(t, a, &Redactor::none())
    }

    #[test]
    fn the_verdict_says_what_did_not_match() {
        let t = target();
        assert_eq!(judged(&t, &answer(200, "all healthy", 10)), Ok(200));
        assert_eq!(
            judged(&t, &answer(503, "", 10)).unwrap_err().to_string(),
            "target status:503 != 200"
        );
        assert_eq!(
            judged(&t, &answer(200, "sick", 10))
                .unwrap_err()
                .to_string(),
            "response body does not contain \"healthy\""
        );
        let slow = judged(&t, &answer(200, "healthy", 1234)).unwrap_err();
        assert_eq!(
            slow,
            CheckError::TooSlow {
                status: 200,
                took_ms: 1234,
                max_ms: 500
            }
        );
        assert_eq!(slow.http_status(), Some(200));
        assert_eq!(
            slow.to_string(),
            "response took 1234 ms, more than max_response_ms 500"
        );
    }

    #[test]
    fn a_condition_on_the_status_replaces_pass_result() {
        let mut t = Target::new(1, "http://127.0.0.1/");
        t.conditions = Some(Arc::new(
            Conditions::parse("[STATUS] == any(200, 503)").unwrap(),
        ));
        assert_eq!(judged(&t, &answer(503, "", 10)), Ok(503));
        let failed = judged(&t, &answer(404, "", 10)).unwrap_err();
        assert_eq!(failed.to_string(), "[STATUS] == any(200, 503): got 404");
        assert_eq!(failed.http_status(), Some(404));
        t.conditions = Some(Arc::new(Conditions::parse("[BODY].status == ok").unwrap()));
        assert_eq!(
            judged(&t, &answer(503, r#"{"status":"ok"}"#, 10)),
            Err(CheckError::Status {
                expected: 200,
                got: 503
            }),
            "a condition without [STATUS] leaves pass_result in force"
        );
        let failed = judged(&t, &answer(200, r#"{"status":"degraded"}"#, 10)).unwrap_err();
        assert_eq!(failed.to_string(), "[BODY].status == ok: got \"degraded\"");
    }
}
