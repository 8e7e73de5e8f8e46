//! CPU time of a process's threads, by thread name, from `/proc` (Linux;
//! elsewhere every reading is empty).

use std::collections::BTreeMap;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on
/// every Linux this runs on).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU seconds (user + system) per thread name, summed over the threads
/// that share a name, at one moment.
#[derive(Debug, Clone, Default)]
pub struct CpuSnapshot {
    by_name: BTreeMap<String, f64>,
}

impl CpuSnapshot {
    /// Reads every thread of this process.
    pub fn now() -> CpuSnapshot {
        CpuSnapshot::of(None)
    }

    /// Reads every thread of process `pid` (`None`: this process).
    pub fn of(pid: Option<u32>) -> CpuSnapshot {
        let mut by_name = BTreeMap::new();
        let dir = match pid {
            Some(pid) => format!("/proc/{pid}/task"),
            None => "/proc/self/task".to_owned(),
        };
        let Ok(tasks) = std::fs::read_dir(dir) else {
            return CpuSnapshot { by_name };
        };
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            if let Some((name, secs)) = parse_stat(&stat) {
                *by_name.entry(name).or_insert(0.0) += secs;
            }
        }
        CpuSnapshot { by_name }
    }

    /// CPU seconds per thread name used between `earlier` and this one.
    pub fn since(&self, earlier: &CpuSnapshot) -> BTreeMap<String, f64> {
        self.by_name
            .iter()
            .map(|(name, secs)| {
                let before = earlier.by_name.get(name).copied().unwrap_or(0.0);
                (name.clone(), (secs - before).max(0.0))
            })
            .filter(|(_, secs)| *secs > 0.0)
            .collect()
    }
}

/// `(comm, utime + stime in seconds)` from a `/proc/<pid>/task/<tid>/stat`
/// line. The name is in parentheses and may itself contain spaces or `)`,
/// so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(String, f64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    // After ")": state (field 3), ..., utime (14), stime (15).
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((name, (utime + stime) / TICKS_PER_SEC))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_name_and_seconds() {
        let line = "4242 (bench worker) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 5 6 7";
        assert_eq!(parse_stat(line), Some(("bench worker".into(), 3.0)));
        assert_eq!(parse_stat("garbage"), None);
    }
}
