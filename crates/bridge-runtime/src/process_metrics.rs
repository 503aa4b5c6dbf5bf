//! The process's own series, under the names every Prometheus client library uses
//! (`process_resident_memory_bytes`, `process_cpu_seconds_total`, …), so existing
//! dashboards and alerts on memory and CPU work unchanged. Read from `/proc` at each
//! scrape; nothing is written where `/proc` is not there.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Linux reports CPU times and start times in `USER_HZ` ticks, 100 a second on every
/// architecture Linux exposes to user space.
const TICKS_PER_SECOND: f64 = 100.0;

/// Collects the process series at scrape time.
#[derive(Debug, Default)]
pub struct ProcessCollector;

/// One reading of `/proc/self`.
#[derive(Debug, Default, PartialEq)]
struct Reading {
    cpu_seconds: f64,
    start_time_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    threads: u64,
    open_fds: u64,
}

/// A figure of `/proc/<pid>/status` (`pid` a number or `self`) in bytes: `VmRSS` the
/// resident set now, `VmHWM` its peak; 0 where the process or `/proc` is not there.
pub fn memory(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| status_kib(&status, field))
        .map_or(0, |kib| kib * 1024)
}

/// The number of a `Field:  N kB` (or `Field: N`) line of a `/proc/<pid>/status` text.
fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl Reading {
    fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let mut reading = Self::parse(&stat, &status, &boot)?;
        reading.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
        Some(reading)
    }

    /// From the text of `/proc/self/stat`, `/proc/self/status` and `/proc/stat`.
    fn parse(stat: &str, status: &str, boot: &str) -> Option<Self> {
        // The command name (field 2) is in parentheses and may hold spaces: fields are
        // counted from the last `)`, which is followed by field 3.
        let after_name = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
        let (utime, stime, start) = (field(14)?, field(15)?, field(22)?);
        let boot_time: f64 = boot
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        Some(Self {
            cpu_seconds: (utime + stime) / TICKS_PER_SECOND,
            start_time_seconds: boot_time + start / TICKS_PER_SECOND,
            resident_bytes: status_kib(status, "VmRSS")? * 1024,
            virtual_bytes: status_kib(status, "VmSize")? * 1024,
            threads: status_kib(status, "Threads")?,
            open_fds: 0,
        })
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(r) = Reading::now() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(r.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        for (name, help, value) in [
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                r.start_time_seconds,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                r.resident_bytes as f64,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                r.virtual_bytes as f64,
            ),
            ("process_threads", "Number of OS threads", r.threads as f64),
            (
                "process_open_fds",
                "Number of open file descriptors",
                r.open_fds as f64,
            ),
        ] {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (erp writer) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 70 0 0 20 0 \
                        9 0 123400 1000000 500 18446744073709551615";
    const STATUS: &str = "Name:\terp writer\nVmHWM:\t  9000 kB\nVmRSS:\t  8192 kB\n\
                          VmSize:\t 65536 kB\nThreads:\t9\n";
    const BOOT: &str = "cpu  1 2 3\nbtime 1700000000\nprocesses 7\n";

    #[test]
    fn fields_are_counted_after_a_command_name_with_spaces() -> Result<(), &'static str> {
        let r = Reading::parse(STAT, STATUS, BOOT).ok_or("no reading")?;
        assert_eq!(
            r,
            Reading {
                cpu_seconds: 3.2,
                start_time_seconds: 1_700_001_234.0,
                resident_bytes: 8192 * 1024,
                virtual_bytes: 65536 * 1024,
                threads: 9,
                open_fds: 0,
            }
        );
        assert_eq!(Reading::parse("4242 (x S 1", STATUS, BOOT), None);
        assert_eq!(Reading::parse(STAT, "VmRSS:\t1 kB\n", BOOT), None);
        Ok(())
    }

    #[test]
    fn the_peak_is_at_least_the_resident_set() {
        let now = memory("self", "VmRSS");
        assert!(now > 0);
        assert!(memory("self", "VmHWM") >= now);
        assert_eq!(
            memory("self", "Vm"),
            0,
            "a prefix of a field is not the field"
        );
        let own = std::process::id().to_string();
        assert!(memory(&own, "VmHWM") >= now);
        assert_eq!(memory("no-such-process", "VmHWM"), 0);
    }

    #[test]
    fn this_process_is_read() -> Result<(), &'static str> {
        let r = Reading::now().ok_or("no /proc reading")?;
        assert!(r.resident_bytes > 0 && r.virtual_bytes >= r.resident_bytes);
        assert!(r.threads >= 1 && r.open_fds >= 3);
        assert!(r.start_time_seconds > 1_600_000_000.0);
        Ok(())
    }
}
