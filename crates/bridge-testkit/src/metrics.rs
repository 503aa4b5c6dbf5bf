//! Reading a service's `/metrics` text in tests.

/// Σ of the samples of the series `name` (every label set; `name` followed by a space or
/// `{`, so `bridge_x_total` does not also count `bridge_x_total_seconds`).
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter(|l| l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_summed_over_label_sets_and_longer_names_left_out() {
        let text =
            "# HELP a_total x\na_total{k=\"1\"} 2\na_total{k=\"2\"} 3.5\na_total_seconds 9\n";
        assert_eq!(metric_sum(text, "a_total"), 5.5);
        assert_eq!(metric_sum(text, "missing"), 0.0);
    }
}
