//! Plain-text tables for the CLI, in the original's boxed style, aligned by display width so
//! CJK and emoji names line up.

use crate::base::text;

/// A table of rows of cells; the first row is the header.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|s| s.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn widths(&self) -> Vec<usize> {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| width(s))
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }
}

/// Columns a cell takes, with control characters (a hostile name) shown as spaces.
fn width(s: &str) -> usize {
    text::width(&text::printable(s))
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let widths = self.widths();
        let rule: String = widths
            .iter()
            .map(|w| format!("+{}", "-".repeat(w + 2)))
            .collect::<String>()
            + "+";
        writeln!(f, "{rule}")?;
        for (i, row) in self.rows.iter().enumerate() {
            for (c, w) in widths.iter().enumerate() {
                let cell = text::printable(row.get(c).map(String::as_str).unwrap_or(""));
                write!(f, "| {}{} ", cell, " ".repeat(w - text::width(&cell)))?;
            }
            writeln!(f, "|")?;
            if i == 0 {
                writeln!(f, "{rule}")?;
            }
        }
        writeln!(f, "{rule}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut t = Table::new(&["ID", "Name"]);
        t.row(vec!["1".into(), "Ünïcode name".into()]);
        let text = t.to_string();
        assert_eq!(
            text,
            "+----+--------------+\n| ID | Name         |\n+----+--------------+\n\
             | 1  | Ünïcode name |\n+----+--------------+\n"
        );
    }

    #[test]
    fn wide_characters_take_two_columns() {
        let mut t = Table::new(&["Name", "X"]);
        t.row(vec!["監視 🚀".into(), "y".into()]);
        t.row(vec!["plain".into(), "z".into()]);
        let lines: Vec<String> = t.to_string().lines().map(text::printable).collect();
        let bars: Vec<usize> = lines
            .iter()
            .filter(|l| l.starts_with('|'))
            .map(|l| text::width(&l[..l.rfind('|').unwrap()]))
            .collect();
        assert!(bars.windows(2).all(|w| w[0] == w[1]), "{lines:?}");
    }
}
