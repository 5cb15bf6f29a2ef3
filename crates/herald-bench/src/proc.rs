//! The server's resident memory and CPU time, read from `/proc/<pid>`.

use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Usage {
    pub rss_kib: u64,
    pub cpu_seconds: f64,
}

/// `None` when the process cannot be read (no `--pid`, or not on Linux).
pub fn sample(pid: Option<u32>) -> Option<Usage> {
    let pid = pid?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th there.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // Linux reports in USER_HZ, which is 100 on every mainstream architecture.
    Some(Usage { rss_kib, cpu_seconds: ticks / 100.0 })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_its_own_process() {
        let usage = super::sample(Some(std::process::id())).expect("own /proc entry");
        assert!(usage.rss_kib > 0);
    }
}
