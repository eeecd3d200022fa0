//! The helpers `/metrics` writes its series with: label sets borrowed from the rows, and one
//! function per kind of metric (gauge, counter, histogram, a family of series).

use std::borrow::Cow;
use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::Histo;
use crate::base::text::label_value;
use crate::http::query::{NotifierNow, TargetFigures};

/// A series' labels, borrowed from the rows: no allocation per series but for a name with
/// hidden characters, which [`crate::base::text::label_value`] shows escaped.
pub(super) type Id<'a> = ([(&'static str, i64); 1], [(&'static str, Cow<'a, str>); 1]);
pub(super) type IdAnd<'a> = (Id<'a>, [(&'static str, &'a str); 1]);

pub(super) fn target_labels(t: &TargetFigures) -> Id<'_> {
    ([("id", t.id)], [("name", label_value(&t.name))])
}

pub(super) fn notifier_labels(n: &NotifierNow) -> Id<'_> {
    ([("id", n.id)], [("name", label_value(&n.name))])
}

pub(super) fn with<'a>(t: &'a TargetFigures, key: &'static str, value: &'a str) -> IdAnd<'a> {
    (target_labels(t), [(key, value)])
}

pub(super) fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> fmt::Result {
    let m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

pub(super) fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> fmt::Result {
    let m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(v).encode(m)
}

pub(super) fn histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    h: &Histo,
) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    let h = &h.0;
    m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
        h.sum_s, h.count, &h.buckets, None,
    )
}

/// A family with the series `series` gives for each item.
pub(super) fn family<'a, T, L: EncodeLabelSet, I: IntoIterator<Item = (L, f64)>>(
    e: &mut DescriptorEncoder,
    (name, help, kind): (&str, &str, MetricType),
    items: &'a [T],
    series: impl Fn(&'a T) -> I,
) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, kind)?;
    for item in items {
        for (labels, v) in series(item) {
            let inner = m.encode_family(&labels)?;
            if matches!(kind, MetricType::Counter) {
                ConstCounter::new(v as u64).encode(inner)?;
            } else {
                ConstGauge::new(v).encode(inner)?;
            }
        }
    }
    Ok(())
}
