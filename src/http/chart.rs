//! A target's last 24 hours as an inline SVG chart, from its hourly rollups: the average
//! response time of each hour as a line, a red mark under the hours with failed checks, and
//! each hour's figures (checks, failures, average, 95th percentile, maximum) in a title shown
//! on hover. No script: the SVG is part of the page.

use std::fmt::Write;

use crate::base::rollup::Rollup;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
/// The plot area: left of it the time labels, under it the hour labels and failure marks.
const LEFT: f64 = 52.0;
const RIGHT: f64 = 712.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 180.0;

/// The chart of `hours` (start in ms, rollup when the hour had checks), oldest first.
pub fn response_times(hours: &[(i64, Option<Rollup>)]) -> String {
    let top = scale_top(hours);
    let slot = (RIGHT - LEFT) / hours.len().max(1) as f64;
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-label=\"average response time per hour, last 24 hours\">"
    );
    grid(&mut svg, top);
    let mut line: Vec<(f64, f64)> = Vec::new();
    for (i, (start, rollup)) in hours.iter().enumerate() {
        let x = LEFT + slot * (i as f64 + 0.5);
        if i % 6 == 0 {
            let _ = write!(
                svg,
                "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                BOTTOM + 30.0,
                hour_label(*start)
            );
        }
        match rollup.filter(|r| r.checks > 0) {
            Some(r) => {
                let y = y_of(average(&r), top);
                line.push((x, y));
                point(&mut svg, x, y, slot, &r);
                hover(&mut svg, x - slot / 2.0, slot, &title(*start, &r));
            }
            None => {
                flush(&mut svg, &mut line);
                hover(
                    &mut svg,
                    x - slot / 2.0,
                    slot,
                    &format!("{}: not checked", hour_label(*start)),
                );
            }
        }
    }
    flush(&mut svg, &mut line);
    svg.push_str("</svg>\n");
    svg
}

/// Horizontal lines at 0, half and the top, with their times.
fn grid(svg: &mut String, top: f64) {
    for value in [0.0, top / 2.0, top] {
        let y = y_of(value, top);
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{RIGHT}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} ms</text>",
            LEFT - 6.0,
            y + 4.0,
            value.round()
        );
    }
}

/// The hour's dot, and its failure mark when checks failed.
fn point(svg: &mut String, x: f64, y: f64, slot: f64, r: &Rollup) {
    let _ = write!(
        svg,
        "<circle class=\"pt\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.5\"/>"
    );
    if r.failures > 0 {
        let _ = write!(
            svg,
            "<rect class=\"fail\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"6\"/>",
            x - slot / 2.0 + 1.0,
            BOTTOM + 6.0,
            slot - 2.0
        );
    }
}

/// An invisible column over the hour that carries its figures as a title.
fn hover(svg: &mut String, x: f64, width: f64, title: &str) {
    let _ = write!(
        svg,
        "<rect class=\"hover\" x=\"{x:.1}\" y=\"{TOP}\" width=\"{width:.1}\" height=\"{:.1}\">\
         <title>{}</title></rect>",
        BOTTOM + 12.0 - TOP,
        crate::base::text::html(title)
    );
}

/// Draws the line so far (a gap in the checks breaks it) and starts a new one.
fn flush(svg: &mut String, line: &mut Vec<(f64, f64)>) {
    if line.len() > 1 {
        let points: Vec<String> = line.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = write!(
            svg,
            "<polyline class=\"avg\" points=\"{}\"/>",
            points.join(" ")
        );
    }
    line.clear();
}

fn title(start: i64, r: &Rollup) -> String {
    // Estimated within its histogram bucket (rollup::Rollup::percentile), hence the ~.
    let p95 = r
        .percentile(0.95)
        .map_or(String::new(), |p| format!(", p95 ~{p:.1} ms"));
    format!(
        "{}: {} checks, {} failed; {} ms on average{p95}, at most {} ms",
        hour_label(start),
        r.checks,
        r.failures,
        average(r).round(),
        r.response_ms_max
    )
}

fn average(r: &Rollup) -> f64 {
    r.response_ms_sum as f64 / r.checks.max(1) as f64
}

/// The top of the scale: 1, 2 or 5 times a power of ten, at least the highest average and
/// 10 ms.
fn scale_top(hours: &[(i64, Option<Rollup>)]) -> f64 {
    let highest = hours
        .iter()
        .filter_map(|(_, r)| r.filter(|r| r.checks > 0))
        .map(|r| average(&r))
        .fold(10.0, f64::max);
    let mut step = 1.0;
    loop {
        for m in [1.0, 2.0, 5.0] {
            if m * step >= highest {
                return m * step;
            }
        }
        step *= 10.0;
    }
}

fn y_of(value: f64, top: f64) -> f64 {
    BOTTOM - (value / top).clamp(0.0, 1.0) * (BOTTOM - TOP)
}

/// `05:00`, the hour's start in UTC.
fn hour_label(start_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(start_ms)
        .map(|t| t.format("%H:00").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(avg: u64, failures: u64) -> Option<Rollup> {
        Some(Rollup {
            checks: 10,
            failures,
            response_ms_sum: avg * 10,
            response_ms_max: avg * 2,
            ..Rollup::default()
        })
    }

    #[test]
    fn the_scale_fits_the_highest_average() {
        assert_eq!(scale_top(&[(0, hour(7, 0))]), 10.0);
        assert_eq!(scale_top(&[(0, hour(130, 0)), (1, None)]), 200.0);
        assert_eq!(scale_top(&[(0, hour(4999, 0))]), 5000.0);
    }

    #[test]
    fn a_gap_breaks_the_line_and_failures_are_marked() {
        let hours = [
            (0, hour(10, 0)),
            (3_600_000, hour(20, 1)),
            (7_200_000, None),
            (10_800_000, hour(30, 0)),
        ];
        let svg = response_times(&hours);
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 3);
        assert_eq!(svg.matches("class=\"fail\"").count(), 1);
        assert!(svg.contains("<title>01:00: 10 checks, 1 failed; 20 ms on average"));
        assert!(svg.contains("<title>02:00: not checked</title>"));
    }
}
