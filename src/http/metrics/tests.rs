//! Unit tests of `/metrics`: names with anything in them are label values a scraper reads
//! back as the name, shown escaped; a value of `[secrets]` in a name shows as `***`.

use super::encode::{family, notifier_labels, target_labels, with};
use super::*;
use crate::base::text::label_value;
use crate::sinks_test::hostile;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use proptest::prelude::*;

/// The per-target and per-notifier series of these rows, as a scrape gets them.
#[derive(Debug)]
struct Named(Vec<TargetFigures>, Vec<NotifierNow>);

impl Collector for Named {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let up = ("skypunch_target_up", "up", MetricType::Gauge);
        family(&mut e, up, &self.0, |t| [(target_labels(t), 1.0)])?;
        let checks = ("skypunch_target_checks", "checks", MetricType::Counter);
        family(&mut e, checks, &self.0, |t| {
            [(with(t, "result", "pass"), 2.0)]
        })?;
        let sent = ("skypunch_notifier_alerts_sent", "sent", MetricType::Counter);
        family(&mut e, sent, &self.1, |n| [(notifier_labels(n), 3.0)])
    }
}

fn figures(id: i64, name: &str) -> TargetFigures {
    TargetFigures {
        id,
        name: name.into(),
        up: Some(true),
        config_error: false,
        http_status: None,
        response_ms: None,
        last_check_ms: None,
        incident_ms: None,
        cert_expires_s: None,
        phases: None,
        counts: crate::base::state::Counts {
            pass: 2,
            ..Default::default()
        },
    }
}

/// The labels of a sample line, read as the exposition format says (the reader
/// prometheus-parse is not: it splits at every `,` and `=`): `\\`, `\"` and `\n` are the
/// only escapes; anything else after a backslash is an error.
fn labels_of(line: &str) -> Vec<(String, String)> {
    let mut rest = line.split_once('{').expect("a sample with labels").1;
    let mut labels = Vec::new();
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("a closing quote") {
                (i, '"') => break i,
                (_, '\\') => match chars.next().expect("an escape").1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    c => panic!("\\{c} is no escape of the format: {line}"),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_string(), value));
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels
}

/// The exposition of the target and notifier series of rows named `names`.
fn exposition(names: &[String]) -> String {
    let targets = names
        .iter()
        .enumerate()
        .map(|(i, n)| figures(i as i64 + 1, n));
    let notifiers = names.iter().enumerate().map(|(i, n)| NotifierNow {
        id: i as i64 + 1,
        name: n.clone(),
        pending: 0,
        sent: 3,
        failed: 0,
    });
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Named(targets.collect(), notifiers.collect())));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text
}

#[test]
fn a_secret_in_a_name_is_masked_before_it_is_escaped() {
    // A secret holding a quote and a backslash: found in the name as written, not as the
    // label value escapes it.
    let secret = r#"s3c"r\3t-value"#;
    let name = format!("shop {secret} eu");
    let mut targets = vec![figures(1, &name), figures(2, "plain")];
    let mut notifiers = vec![NotifierNow {
        id: 1,
        name: format!("ops {secret}"),
        pending: 0,
        sent: 3,
        failed: 0,
    }];
    mask_names(&mut targets, &mut notifiers, &Redactor::new([secret]));
    assert_eq!(&*targets[0].name, "shop *** eu");
    assert_eq!(&*targets[1].name, "plain");
    assert_eq!(notifiers[0].name, "ops ***");

    let names: Vec<String> = vec![targets[0].name.to_string(), notifiers[0].name.clone()];
    let text = exposition(&names);
    assert!(!text.contains("s3c"), "{text}");
    assert!(text.contains(r#"name="shop *** eu""#), "{text}");

    let mut unchanged = vec![figures(1, &name)];
    mask_names(&mut unchanged, &mut [], &Redactor::none());
    assert_eq!(&*unchanged[0].name, name, "no secrets: nothing masked");
}

/// Names of C0 controls, DEL, backslashes and letters: what prometheus-parse, which splits
/// labels at every `,`, `=`, `}` and `"`, can read once shown escaped.
fn control_names() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        prop::char::range('\0', '\x1f'),
        Just('\x7f'),
        Just('\\'),
        Just('x')
    ];
    prop::collection::vec(c, 0..30).prop_map(|cs| cs.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A name with anything in it is a label value that reads back, as the format says,
    /// as the name with its hidden characters shown escaped; no raw control reaches the
    /// exposition.
    #[test]
    fn names_are_label_values_read_back_shown_escaped(names in prop::collection::vec(hostile(), 1..4)) {
        let text = exposition(&names);
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        prop_assert_eq!(samples.len(), 3 * names.len(), "{}", text);
        for line in text.lines() {
            prop_assert!(!line.chars().any(crate::base::text::is_hidden), "{:?}", line);
        }
        for line in samples {
            let labels = labels_of(line);
            let id: usize = labels[0].1.parse().unwrap();
            let want = ("name".to_string(), label_value(&names[id - 1]).into_owned());
            prop_assert_eq!(&labels[1], &want);
        }
    }

    /// prometheus-parse reads a name of controls as the escaped value between the quotes.
    #[test]
    fn a_scraper_reads_names_of_controls(names in prop::collection::vec(control_names(), 1..4)) {
        let text = exposition(&names);
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())));
        let scrape = scrape.unwrap();
        prop_assert_eq!(scrape.samples.len(), 3 * names.len());
        for sample in &scrape.samples {
            let id: usize = sample.labels.get("id").unwrap().parse().unwrap();
            let written = label_value(&names[id - 1]).replace('\\', "\\\\");
            prop_assert!(!written.chars().any(crate::base::text::is_hidden));
            prop_assert_eq!(sample.labels.get("name"), Some(written.as_str()));
        }
    }
}
