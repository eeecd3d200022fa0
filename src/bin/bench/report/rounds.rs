//! Several rounds of one throughput run: a line per round, the median ratio to
//! blackbox_exporter with its spread, the rounds' JSON together, and each round's problems.

use serde_json::{json, Value};

use super::{asked, per_check_us, Results};
use crate::bench::blackbox;

/// Several rounds of the same run, each a daemon run then a blackbox_exporter run.
pub struct Rounds<'a>(pub &'a [Results]);

/// Median, lowest and highest of some figures.
fn spread(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = match n {
        0 => return None,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    };
    Some((median, v[0], v[n - 1]))
}

impl Rounds<'_> {
    fn ratios(&self) -> Vec<f64> {
        self.0.iter().filter_map(Results::ratio).collect()
    }

    /// One line per round and the median ratio with its spread.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "\n| round | checks/s | daemon CPU µs/check | blackbox probes/s (asked) | \
             blackbox CPU µs/probe | ratio |\n|---|---|---|---|---|---|\n",
        );
        for (i, r) in self.0.iter().enumerate() {
            let Some(b) = &r.blackbox else { continue };
            out.push_str(&format!(
                "| {} | {:.0} | {:.1} | {:.0} ({}) | {:.1} | {:.2}x |\n",
                i + 1,
                r.rate(),
                per_check_us(r.cpu.daemon, r.window.checks),
                b.rate(),
                asked(b.rate_asked),
                per_check_us(b.exporter_cpu, b.probes_ok),
                r.ratio().unwrap_or(0.0)
            ));
        }
        if let Some((median, low, high)) = spread(self.ratios()) {
            out.push_str(&format!(
                "skypunch / blackbox_exporter per CPU-second at equal rates: median {median:.2}x \
                 over {} rounds (spread {low:.2}-{high:.2}x)\n",
                self.0.len()
            ));
        }
        out
    }

    /// The figures of the rounds together; every round's own JSON is kept beside them.
    pub fn comparison_json(&self) -> Value {
        let ratios = self.ratios();
        let s = spread(ratios.clone());
        let us = |r: &Results| per_check_us(r.cpu.daemon, r.window.checks);
        json!({
            "rounds": self.0.len(),
            "ratios": ratios,
            "ratio_median": s.map(|s| s.0),
            "ratio_min": s.map(|s| s.1),
            "ratio_max": s.map(|s| s.2),
            "daemon_cpu_us_per_check": self.0.iter().map(us).collect::<Vec<_>>(),
            "daemon_cpu_us_per_check_median": spread(self.0.iter().map(us).collect()).map(|s| s.0),
            "blackbox_probes_per_cpu_s": self.0.iter()
                .filter_map(|r| r.blackbox.as_ref().map(blackbox::Outcome::probes_per_cpu_second))
                .collect::<Vec<_>>(),
        })
    }

    pub fn json(&self) -> Value {
        match self.0 {
            [one] => {
                let mut v = one.json();
                if one.blackbox.is_some() {
                    v["comparison"] = self.comparison_json();
                }
                v
            }
            all => json!({
                "command": all.first().map(|r| r.command.clone()),
                "date": all.first().map(|r| r.date.clone()),
                "comparison": self.comparison_json(),
                "runs": all.iter().map(Results::json).collect::<Vec<_>>(),
            }),
        }
    }

    /// Why the rounds do not verify, each problem with its round.
    pub fn problems(&self) -> Vec<String> {
        let many = self.0.len() > 1;
        self.0
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                r.problems().into_iter().map(move |p| match many {
                    true => format!("round {}: {p}", i + 1),
                    false => p,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_and_spread_of_rounds() {
        assert_eq!(spread(vec![3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(spread(vec![4.0, 1.0]), Some((2.5, 1.0, 4.0)));
        assert_eq!(spread(Vec::new()), None);
    }
}
