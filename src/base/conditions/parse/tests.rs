//! The unit tests of [`super`]: condition lines parsed, and each mistake's line, column and
//! expectation.

use super::*;
use proptest::prelude::*;

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

fn one(text: &str) -> Condition {
    let mut c = parse(text).unwrap().list;
    assert_eq!(c.len(), 1, "{text}");
    c.remove(0)
}

#[test]
fn every_form_of_the_issue_parses() {
    let text = "\
# what the API promises
[STATUS] == 200
[STATUS] == any(200, 204)
[STATUS] < 300

[BODY].status == ok
[BODY].items[0].id == 7
len([BODY].items) > 1
has([BODY].error) == false
[BODY] == pat(*\"ok\"*)
[HEADER].Content-Type == pat(application/json*)
[RESPONSE_TIME] < 300
[CERTIFICATE_EXPIRATION] > 72h
";
    let c = parse(text).unwrap();
    assert_eq!(c.len(), 11);
    let lines: Vec<usize> = c.iter().map(Condition::line).collect();
    assert_eq!(lines, [2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13]);
    assert_eq!(c.list[3].text(), "[BODY].status == ok");
    assert!(c.names_status() && c.needs_body() && c.needs_certificate());
}

#[test]
fn sides_are_read_into_typed_values() {
    let c = one("  [body].items[0].id>=7  ");
    assert_eq!(
        c.left,
        Operand::Value(Value::BodyPath(vec![
            Step::Key("items".into()),
            Step::Index(0),
            Step::Key("id".into())
        ]))
    );
    assert_eq!(c.op, Op::Ge);
    assert_eq!(c.text(), "[body].items[0].id>=7");
    let c = one("[BODY].message == all is well");
    assert!(matches!(&c.right, Operand::Literal(l) if l.text == "all is well"));
    let c = one("[CERTIFICATE_EXPIRATION] > 1h30m");
    assert!(matches!(&c.right, Operand::Literal(l) if l.number == Some(Num::int(5_400_000))));
    let c = one("[HEADER].X-Count == any(1, 2,3)");
    assert_eq!(c.left, Operand::Value(Value::Header("x-count".into())));
    assert!(matches!(&c.right, Operand::Any(items) if items.len() == 3));
    let c = one("HAS([HEADER].Retry-After) == FALSE");
    assert!(matches!(&c.right, Operand::Literal(l) if l.text == "false"));
    let c = one("200 == [STATUS]");
    assert!(matches!(c.right, Operand::Value(Value::Status)));
    let c = one("[BODY] == [1,2]");
    assert!(matches!(&c.right, Operand::Literal(l) if l.text == "[1,2]"));
    let c = one("[BODY][1] == x");
    assert_eq!(
        c.left,
        Operand::Value(Value::BodyPath(vec![Step::Index(1)]))
    );
}

#[test]
fn without_conditions_nothing_is_asked() {
    let c = parse("\n  # none yet\r\n\n").unwrap();
    assert!(c.is_empty() && !c.names_status() && !c.needs_body());
    assert!(!one("[BODY].a == b").names_status_alone());
}

impl Condition {
    fn names_status_alone(&self) -> bool {
        Conditions {
            list: vec![self.clone()],
        }
        .names_status()
    }
}

#[test]
fn errors_name_line_column_and_what_was_expected() {
    assert_eq!(
        err("[STATUS] == 200\n[BODY].status ok"),
        "conditions line 2, column 15: expected an operator after [BODY].status: one of \
             ==, !=, <, <=, >, >="
    );
    assert_eq!(
        err("[STAUS] == 200"),
        "conditions line 1, column 1: unknown placeholder [STAUS]: use [STATUS], [BODY], \
             [HEADER].Name, [RESPONSE_TIME] or [CERTIFICATE_EXPIRATION]"
    );
    assert_eq!(
        err("[STATUS] == ok"),
        "conditions line 1, column 13: expected a number, found `ok`"
    );
    assert_eq!(
        err("[CERTIFICATE_EXPIRATION] > 3 days"),
        "conditions line 1, column 28: expected a duration such as 72h, 30m or 10s, or a \
             number of milliseconds, found `3 days`"
    );
    assert_eq!(
        err("[STATUS] =="),
        "conditions line 1, column 12: expected a value after [STATUS] =="
    );
    assert_eq!(
        err("len([BODY].items > 1"),
        "conditions line 1, column 17: expected `)` to close len([BODY].items"
    );
    assert_eq!(
        err("[BODY].items[*].id == 1"),
        "conditions line 1, column 13: [*] (every element) is not supported: name one \
             element, as in [0]"
    );
    assert_eq!(
        err("[STATUS] < pat(2*)"),
        "conditions line 1, column 12: pat() and any() compare with == or != only"
    );
    assert_eq!(
        err("1 == 1"),
        "conditions line 1, column 1: compares no placeholder: name [STATUS], [BODY], \
             [HEADER].Name, [RESPONSE_TIME] or [CERTIFICATE_EXPIRATION]"
    );
    assert!(err("[IP] == 127.0.0.1").contains("[IP] is not available here"));
    assert!(err("age([HEADER].Last-Modified) < 10m").contains("age() is not available here"));
    assert!(err("has([STATUS]) == true").contains("has() takes [BODY]"));
    assert!(err("has([BODY].a) > 1").contains("has() compares with == or != only"));
    assert!(err("has([BODY].a) == yes").contains("expected true or false, found `yes`"));
    assert!(err("[HEADER] == x").contains("expected a header name after [HEADER]"));
    assert!(err("[BODY].a == any(1,,2)").contains("none of them empty"));
    assert!(err("[BODY].a == pat(x").contains("expected `)` at the end of pat(...)"));
    assert!(err("pat(x) == [BODY]").contains("goes on the right"));
    assert!(err("[BODY]. == 1").contains("expected a key after `.`"));
    assert!(err("[BODY].a[x] == 1").contains("expected an index such as [0]"));
    assert!(err("[STATUS] == [BODY] x").contains("unexpected `x` after [BODY]"));
    let many = "[STATUS] == 200\n".repeat(MAX_CONDITIONS + 1);
    assert_eq!(
        err(&many),
        "conditions line 101, column 1: more than 100 conditions"
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    let e = parse("[BODY].nämé ok").unwrap_err();
    assert_eq!((e.line, e.column), (1, 13));
}

proptest! {
    #[test]
    fn any_text_parses_or_fails_with_a_place_on_its_lines(text in "[\\[\\]().=!<>a-zA-Z0-9_ *#,\n\u{e9}-]{0,80}") {
        if let Err(e) = parse(&text) {
            let lines: Vec<&str> = text.split('\n').collect();
            prop_assert!(e.line >= 1 && e.line <= lines.len(), "{e}");
            prop_assert!(e.column >= 1 && e.column <= lines[e.line - 1].chars().count() + 1, "{e}");
            prop_assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn lines_of_grammar_pieces_parse_or_fail_with_a_place(
        pieces in prop::collection::vec(prop::sample::select(vec![
            "[STATUS]", "[BODY]", "[HEADER]", "[RESPONSE_TIME]", "[CERTIFICATE_EXPIRATION]",
            ".a", ".X-Y", "[0]", "[*]", "[", "]", "len(", "has(", "pat(", "any(", ")", ",",
            "==", "!=", "<", ">=", " ", "1", "ok", "72h", "*", "\u{e9}", "true", "#", "\n",
        ]), 0..12),
    ) {
        let text: String = pieces.concat();
        if let Err(e) = parse(&text) {
            let lines: Vec<&str> = text.split('\n').collect();
            prop_assert!(e.line >= 1 && e.line <= lines.len(), "{e}");
            prop_assert!(e.column >= 1 && e.column <= lines[e.line - 1].chars().count() + 1, "{e}");
        }
    }

    #[test]
    fn status_comparisons_parse_with_any_spacing(
        op in prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="]),
        n in 100u16..600,
        a in " {0,3}",
        b in " {0,3}",
    ) {
        let c = one(&format!("[STATUS]{a}{op}{b}{n}"));
        prop_assert_eq!(op_text(c.op), op);
        prop_assert!(matches!(&c.right, Operand::Literal(l) if l.number == Some(Num::int(n.into()))), "{:?}", c.right);
    }
}
