//! Reading a service's `/metrics` text, and this process's memory, in tests.

/// Σ of the samples of the series `name` (every label set; `name` followed by a space or
/// `{`, so `bridge_x_total` does not also count `bridge_x_total_seconds`).
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter(|l| l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A memory figure of this process from `/proc/self/status` (`VmRSS` now, `VmHWM` its
/// peak), in bytes; 0 where `/proc` is not there.
pub fn process_memory(field: &str) -> u64 {
    process_memory_of("self", field)
}

/// [`process_memory`] of the process `pid` (a number, or `self`).
pub fn process_memory_of(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status
                .lines()
                .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
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

    #[test]
    fn the_peak_is_at_least_the_resident_set() {
        let now = process_memory("VmRSS");
        assert!(now > 0);
        assert!(process_memory("VmHWM") >= now);
        assert_eq!(
            process_memory("Vm"),
            0,
            "a prefix of a field is not the field"
        );
        let own = std::process::id().to_string();
        assert!(process_memory_of(&own, "VmHWM") >= now);
        assert_eq!(process_memory_of("no-such-process", "VmHWM"), 0);
    }
}
