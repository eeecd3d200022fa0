//! The `[BODY].path` walker: Gatus's path syntax, dot keys and `[n]` indexes
//! (`[BODY].items[0].id`, `[BODY][2]`, `[BODY].a.b[1][0]`), over the body parsed with
//! serde_json. RFC 9535 JSONPath crates read `$.items[0].id` with filters and slices, a
//! different grammar whose edge cases (quoting, `-` in keys) would not be Gatus's; this walk
//! is the whole of what the syntax needs.

use std::fmt::Write as _;

use serde_json::Value;

use crate::base::text;

/// One step down the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    Key(String),
    Index(usize),
}

/// `.items[0].id`, as written after `[BODY]`.
pub(super) fn path_text(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        let _ = match step {
            Step::Key(k) => write!(out, ".{k}"),
            Step::Index(i) => write!(out, "[{i}]"),
        };
    }
    out
}

/// The value at `steps`, or why there is none (`[BODY].items has no element [3] (it has 2)`).
pub(super) fn walk<'v>(root: &'v Value, steps: &[Step]) -> Result<&'v Value, String> {
    let mut here = root;
    for (n, step) in steps.iter().enumerate() {
        let at = || format!("[BODY]{}", path_text(&steps[..n]));
        here = match (step, here) {
            (Step::Key(k), Value::Object(map)) => map.get(k).ok_or_else(|| {
                format!(
                    "{} has no key {}",
                    at(),
                    text::clip_marked(&text::visible(k), 40)
                )
            })?,
            (Step::Index(i), Value::Array(items)) => items
                .get(*i)
                .ok_or_else(|| format!("{} has no element [{i}] (it has {})", at(), items.len()))?,
            (Step::Key(_), other) => {
                return Err(format!("{} is {}, not an object", at(), type_name(other)))
            }
            (Step::Index(_), other) => {
                return Err(format!("{} is {}, not an array", at(), type_name(other)))
            }
        };
    }
    Ok(here)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON value as a condition compares it: a string without its quotes, a number or boolean
/// as written, `null`, an array or object as compact JSON.
pub(super) fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// `len()` of a JSON value: elements of an array, keys of an object, characters of a string
/// or of any other value's text.
pub(super) fn len(v: &Value) -> usize {
    match v {
        Value::Array(items) => items.len(),
        Value::Object(map) => map.len(),
        other => as_text(other).chars().count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(k: &str) -> Step {
        Step::Key(k.into())
    }

    #[test]
    fn keys_and_indexes_walk_down_the_document() {
        let doc = json!({"items": [{"id": 7}, {"id": 8}], "a-b": {"c": [[1, 2]]}});
        let id = [key("items"), Step::Index(1), key("id")];
        assert_eq!(walk(&doc, &id), Ok(&json!(8)));
        let nested = [key("a-b"), key("c"), Step::Index(0), Step::Index(1)];
        assert_eq!(walk(&doc, &nested), Ok(&json!(2)));
        assert_eq!(path_text(&nested), ".a-b.c[0][1]");
        assert_eq!(walk(&json!([5, 6]), &[Step::Index(0)]), Ok(&json!(5)));
        assert_eq!(walk(&doc, &[]), Ok(&doc));
    }

    #[test]
    fn a_missing_value_says_where_the_walk_stopped() {
        let doc = json!({"items": [{"id": 7}], "status": "ok"});
        assert_eq!(
            walk(&doc, &[key("items"), Step::Index(3)]).unwrap_err(),
            "[BODY].items has no element [3] (it has 1)"
        );
        assert_eq!(
            walk(&doc, &[key("nope")]).unwrap_err(),
            "[BODY] has no key nope"
        );
        assert_eq!(
            walk(&doc, &[key("status"), key("x")]).unwrap_err(),
            "[BODY].status is a string, not an object"
        );
        assert_eq!(
            walk(&doc, &[key("items"), key("x")]).unwrap_err(),
            "[BODY].items is an array, not an object"
        );
    }

    #[test]
    fn values_compare_as_their_text_and_length() {
        assert_eq!(as_text(&json!("degraded")), "degraded");
        assert_eq!(as_text(&json!(7.5)), "7.5");
        assert_eq!(as_text(&json!(null)), "null");
        assert_eq!(as_text(&json!({"a": [1]})), r#"{"a":[1]}"#);
        assert_eq!(len(&json!([1, 2, 3])), 3);
        assert_eq!(len(&json!({"a": 1})), 1);
        assert_eq!(len(&json!("héllo")), 5);
        assert_eq!(len(&json!(1234)), 4);
    }
}
