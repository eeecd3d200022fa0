//! The unit tests of [`super`]: rows decoded column by column, bad values named, counters
//! repaired.

use super::*;

fn fields(values: Vec<Value>) -> Fields {
    Fields::of("targets", values.into_iter().map(Some).collect())
}

fn text(s: &str) -> Value {
    Value::Bytes(s.as_bytes().to_vec())
}

#[test]
fn a_good_row_decodes_from_either_protocol() {
    let mut f = fields(vec![Value::Int(7), text("60"), Value::NULL, text("2")]);
    assert_eq!(f.id(0, "id"), Ok(7));
    assert_eq!(f.get::<i64>(1, "frequency"), Ok(60));
    assert_eq!(f.opt::<i64>(2, "max_response_ms"), Ok(None));
    assert_eq!(f.flag(3, "enabled"), Ok(true), "any non-zero is true");
}

#[test]
fn a_non_positive_id_cannot_name_its_row() {
    for id in [Value::Int(-1), Value::Int(0), text("-9223372036854775808")] {
        let bad = fields(vec![id]).id(0, "id").unwrap_err();
        assert_eq!(bad.problem(), "ids are positive");
        assert_eq!(bad.usable_id(), None);
    }
    for id in [Value::Int(-1), text("-1")] {
        let bad = fields(vec![id]).id(0, "id").unwrap_err();
        assert_eq!(bad.to_string(), "targets row with id -1: ids are positive");
    }
}

#[test]
fn a_bad_column_names_the_row_the_column_and_the_value() {
    let mut f = fields(vec![
        Value::Int(5),
        Value::Int(-1),
        Value::NULL,
        text("abc"),
    ]);
    f.id(0, "id").unwrap();
    let bad = f.get::<u32>(1, "attempts").unwrap_err();
    assert_eq!(
        bad.to_string(),
        "targets row with id 5: attempts: -1 is not a whole number from 0 to 4294967295"
    );
    assert_eq!(bad.usable_id(), Some(5));
    let bad = f.get::<String>(2, "name").unwrap_err();
    assert_eq!(bad.problem(), "name: NULL is not UTF-8 text");
    let bad = f.get::<i64>(3, "frequency").unwrap_err();
    assert_eq!(bad.problem(), "frequency: 'abc' is not a whole number");
}

#[test]
fn counters_past_their_type_and_binary_text_are_errors() {
    let mut f = fields(vec![
        Value::UInt(u64::MAX),
        Value::Bytes(vec![0xff, 0xfe]),
        Value::Bytes(vec![0xff]),
    ]);
    let bad = f.get::<i64>(0, "pass_count").unwrap_err();
    assert!(bad.why.starts_with("18446744073709551615 is not"), "{bad}");
    assert_eq!(bad.key, "no readable key");
    let bad = f.get::<String>(1, "name").unwrap_err();
    assert_eq!(bad.problem(), "name: 2 bytes of binary is not UTF-8 text");
    let bad = f.secret(2, "authn_parms").unwrap_err();
    assert!(
        !bad.why.contains("bytes"),
        "a secret's value is not described"
    );
}

#[test]
fn keys_of_several_columns_are_named_together() {
    let mut f = Fields::of(
        "alert_deliveries",
        vec![Some(Value::Int(7)), Some(Value::Int(-2))],
    );
    f.id(0, "alert_id").unwrap();
    let bad = f.id(1, "notifier_id").unwrap_err();
    assert_eq!(
        bad.to_string(),
        "alert_deliveries row with alert_id 7, notifier_id -2: ids are positive"
    );
    assert_eq!(bad.keys, vec![7, -2]);
}

#[test]
fn long_text_is_cut_and_controls_are_not_shown() {
    let mut f = fields(vec![text(&format!("\x1b[31m{}", "x".repeat(100)))]);
    let bad = f.get::<i64>(0, "frequency").unwrap_err();
    assert!(!bad.why.contains('\x1b'), "{bad}");
    assert!(bad.why.len() < 80, "{bad}");
}

#[test]
fn each_problem_is_reported_once() {
    let problem = "test_table row with id -42: ids are positive (decode unit test)";
    assert!(first_report(problem));
    assert!(!first_report(problem));
    assert!(first_report(&format!("{problem}, another")));
}

#[test]
fn counters_out_of_range_start_again_at_zero() {
    assert_eq!(counter_fix("pass_count", 5), None);
    assert_eq!(counter_fix("pass_count", COUNTER_MAX), None);
    assert_eq!(
        counter_fix("pass_count", -3),
        Some(Fix {
            column: "pass_count",
            was: -3,
            now: 0
        })
    );
    assert_eq!(counter_fix("fail_count", i64::MAX).map(|f| f.now), Some(0));
    assert_eq!(
        counter_fix("state_seq", COUNTER_MAX + 1).map(|f| f.now),
        Some(0)
    );
    assert_eq!(counter_fix("state_seq", i64::MIN).map(|f| f.now), Some(0));
    let fixes = [
        counter_fix("state_seq", -1).unwrap(),
        counter_fix("attempts", -5).unwrap(),
    ];
    assert_eq!(describe(&fixes), "state_seq -1 -> 0, attempts -5 -> 0");
}
