//! The unit tests of [`super`]: answers judged by conditions, and failures described redacted and
//! cut to fit.

use super::*;
use proptest::prelude::*;
use ureq::http::HeaderValue;

struct Fixture {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
    ms: u64,
    cert_left_ms: Option<i64>,
}

fn answer(status: u16, body: &str) -> Fixture {
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    Fixture {
        status,
        headers,
        body: body.as_bytes().to_vec(),
        ms: 120,
        cert_left_ms: None,
    }
}

impl Fixture {
    fn judge(&self, conditions: &str) -> Result<(), String> {
        self.judge_with(conditions, &Redactor::none())
    }

    fn judge_with(&self, conditions: &str, redactor: &Redactor) -> Result<(), String> {
        let view = ResponseView {
            status: self.status,
            headers: &self.headers,
            body: &self.body,
            response_time: Duration::from_millis(self.ms),
            cert_left_ms: self.cert_left_ms,
        };
        Conditions::parse(conditions)
            .unwrap()
            .evaluate(&view, redactor)
            .map_err(|f| f.description)
    }
}

const HEALTH: &str = r#"{"status": "degraded", "items": [{"id": 7}, {"id": 8}], "error": null,
                            "version": "2.10", "count": 12}"#;

#[test]
fn a_healthy_answer_passes_every_condition_of_the_issue() {
    let mut a = answer(
        200,
        r#"{"status":"ok","items":[{"id":7},{"id":9}],"error":null}"#,
    );
    a.cert_left_ms = Some(100 * 3_600_000);
    let all = "[STATUS] == 200\n[STATUS] == any(200, 204)\n[STATUS] < 300\n\
                   [BODY].status == ok\n[BODY].items[0].id == 7\nlen([BODY].items) > 1\n\
                   has([BODY].error) == false\n[BODY] == pat(*\"ok\"*)\n\
                   [HEADER].Content-Type == pat(application/json*)\n[RESPONSE_TIME] < 300\n\
                   [CERTIFICATE_EXPIRATION] > 72h";
    assert_eq!(a.judge(all), Ok(()));
}

#[test]
fn the_first_failing_condition_is_named_with_what_was_seen() {
    let a = answer(503, HEALTH);
    assert_eq!(
        a.judge("[BODY].count > 1\n[BODY].status == ok\n[STATUS] == 200"),
        Err(r#"[BODY].status == ok: got "degraded""#.into())
    );
    assert_eq!(
        a.judge("[STATUS] == any(200, 204)"),
        Err("[STATUS] == any(200, 204): got 503".into())
    );
    assert_eq!(
        a.judge("[STATUS] < 300"),
        Err("[STATUS] < 300: got 503".into())
    );
    assert_eq!(
        a.judge("len([BODY].items) > 2"),
        Err("len([BODY].items) > 2: got 2".into())
    );
    assert_eq!(
        a.judge("[RESPONSE_TIME] < 100"),
        Err("[RESPONSE_TIME] < 100: got 120 ms".into())
    );
    assert_eq!(
        a.judge("[HEADER].Content-Type == pat(text/*)"),
        Err(
            r#"[HEADER].Content-Type == pat(text/*): got "application/json; charset=utf-8""#.into()
        )
    );
}

#[test]
fn what_is_not_there_fails_whatever_the_operator() {
    let a = answer(200, HEALTH);
    assert_eq!(
        a.judge("[BODY].items[5].id != 1"),
        Err(
            "[BODY].items[5].id != 1: got nothing ([BODY].items has no element [5] (it has 2))"
                .into()
        )
    );
    assert_eq!(
        a.judge("[HEADER].Retry-After > 5"),
        Err("[HEADER].Retry-After > 5: got nothing (no retry-after header in the answer)".into())
    );
    assert_eq!(
            a.judge("[CERTIFICATE_EXPIRATION] > 72h"),
            Err("[CERTIFICATE_EXPIRATION] > 72h: got nothing (no certificate: the answer did not come over TLS)".into())
        );
    let html = answer(200, "<html>down</html>");
    let e = html.judge("[BODY].status == ok").unwrap_err();
    assert!(
        e.starts_with("[BODY].status == ok: got nothing (the body is not JSON: expected value"),
        "{e}"
    );
    assert_eq!(
        answer(200, "").judge("[BODY].a == 1"),
        Err("[BODY].a == 1: got nothing (the body is empty, not JSON)".into())
    );
}

#[test]
fn has_tells_presence_and_null_counts_as_absent() {
    let a = answer(200, HEALTH);
    assert_eq!(
        a.judge("has([BODY].error) == false\nhas([BODY].items) == true"),
        Ok(())
    );
    assert_eq!(
        a.judge("has([BODY].nothing) != true\nhas([HEADER].content-type) == true"),
        Ok(())
    );
    assert_eq!(
        a.judge("has([BODY].status) == false"),
        Err("has([BODY].status) == false: got true".into())
    );
    assert_eq!(answer(200, "  ").judge("has([BODY]) == false"), Ok(()));
    assert_eq!(answer(200, "<p>").judge("has([BODY].x) == false"), Ok(()));
}

#[test]
fn numbers_compare_as_numbers_and_other_text_as_text() {
    let a = answer(200, HEALTH);
    // "2.10" as a number is 2.1: below 2.9 (as text it would be above).
    assert_eq!(
        a.judge("[BODY].version < 2.9\n[BODY].version == 2.1\n[BODY].count >= 12"),
        Ok(())
    );
    assert_eq!(a.judge("[BODY].status > cat\n[BODY].status < dog"), Ok(()));
    assert_eq!(a.judge("[BODY].items[1] == {\"id\":8}"), Ok(()));
    assert_eq!(a.judge("len([BODY]) == 5\nlen([BODY].status) == 8"), Ok(()));
    assert_eq!(answer(200, "not json").judge("len([BODY]) == 8"), Ok(()));
    assert_eq!(
        a.judge("12 == [BODY].count\n[BODY].count == [BODY].count"),
        Ok(())
    );
    assert_eq!(
        a.judge("[BODY].count < [STATUS]\n[BODY].count > [STATUS]"),
        Err("[BODY].count > [STATUS]: got \"12\" and 200".into())
    );
}

#[test]
fn the_certificate_and_the_time_compare_in_milliseconds() {
    let mut a = answer(200, "");
    a.cert_left_ms = Some(48 * 3_600_000);
    assert_eq!(
        a.judge("[CERTIFICATE_EXPIRATION] > 47h59m\n[CERTIFICATE_EXPIRATION] < 2d1s"),
        Ok(())
    );
    assert_eq!(
        a.judge("[CERTIFICATE_EXPIRATION] > 72h"),
        Err("[CERTIFICATE_EXPIRATION] > 72h: got 2d0h".into())
    );
    a.cert_left_ms = Some(-3_600_000);
    assert_eq!(
        a.judge("[CERTIFICATE_EXPIRATION] > 0"),
        Err("[CERTIFICATE_EXPIRATION] > 0: got expired 1h0m ago".into())
    );
    assert_eq!(
        a.judge("[RESPONSE_TIME] < 1s\n[RESPONSE_TIME] >= 120ms"),
        Ok(())
    );
}

#[test]
fn what_is_seen_is_redacted_and_cut_to_fit() {
    let a = answer(
        200,
        r#"{"echo": "key=hunter22 at https://u:pw@h/x?token=t0k", "n": 1}"#,
    );
    let redactor = Redactor::new(["hunter22"]);
    assert_eq!(
        a.judge_with("[BODY].echo == x", &redactor),
        Err(r#"[BODY].echo == x: got "key=*** at https://***@h/x?token=***""#.into())
    );
    let mut h = answer(200, "");
    h.headers
        .insert("set-cookie", HeaderValue::from_static("sid=abcdef"));
    assert_eq!(
        h.judge("[HEADER].Set-Cookie == x"),
        Err(r#"[HEADER].Set-Cookie == x: got "***""#.into())
    );
    let long = answer(200, &format!("{{\"a\": \"{}\\u001b\"}}", "x".repeat(300)));
    let e = long.judge("[BODY].a == pat(y*)").unwrap_err();
    assert_eq!(e.chars().count(), DESCRIPTION_MAX, "{e}");
    assert!(
        e.starts_with("[BODY].a == pat(y*): got \"xxx") && e.ends_with("x..."),
        "{e}"
    );
    let cond = format!("[BODY].{} == 1", "k".repeat(200));
    let e = long.judge(&cond).unwrap_err();
    assert_eq!(e.chars().count(), DESCRIPTION_MAX, "{e}");
    assert!(e.contains("...: got nothing ([BODY] has no key"), "{e}");
}

proptest! {
    #[test]
    fn status_conditions_agree_with_integer_comparison(
        status in 100u16..600,
        n in 100u16..600,
        op in prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="]),
    ) {
        let want = match op {
            "==" => status == n, "!=" => status != n, "<" => status < n,
            "<=" => status <= n, ">" => status > n, _ => status >= n,
        };
        let got = answer(status, "").judge(&format!("[STATUS] {op} {n}"));
        prop_assert_eq!(got.is_ok(), want);
        if let Err(e) = got {
            prop_assert_eq!(e, format!("[STATUS] {op} {n}: got {status}"));
        }
    }

    #[test]
    fn descriptions_always_fit_and_never_hold_the_secret(
        value in "[ -~\u{e9}\n]{0,300}",
        key in "[a-z]{1,150}",
    ) {
        let secret = "S3cr3tValue";
        let body = serde_json::json!({ key.clone(): format!("{value}{secret}{value}") }).to_string();
        let redactor = Redactor::new([secret]);
        let got = answer(200, &body).judge_with(&format!("[BODY].{key} == ~"), &redactor);
        let e = got.unwrap_err();
        prop_assert!(e.chars().count() <= DESCRIPTION_MAX, "{}", e);
        prop_assert!(!e.contains(secret) && !e.contains('\n'), "{}", e);
    }
}
