//! What the machine and the processes are doing, from /proc (Linux): resident memory, CPU
//! time by process group, load average. Numbers measured on a shared machine mean little
//! without the load next to them.

use std::collections::HashMap;

use serde::Serialize;

use crate::stack::{lock, Kind, Pids};

/// VmRSS of `pid` in bytes.
pub fn vm_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The 1-, 5- and 15-minute load averages.
pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn mem_total_gib() -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0)
}

pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn ticks_per_second() -> f64 {
    // USER_HZ is 100 on every Linux this runs on; reading it needs libc (unsafe code).
    100.0
}

/// utime + stime of one process, in clock ticks, and its command name.
fn proc_ticks(pid: &str) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_owned();
    let rest: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the command.
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// Busy and total ticks of the whole machine.
fn machine_ticks() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().next() else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// CPU ticks consumed so far, by group.
#[derive(Clone, Debug, Default)]
pub struct CpuSnapshot {
    groups: HashMap<&'static str, u64>,
    busy: u64,
    total: u64,
}

/// CPU seconds spent between two snapshots, by group; `other` is everything else on the
/// machine (other users' compilers, for instance).
#[derive(Clone, Debug, Default, Serialize)]
pub struct CpuUse {
    pub api: f64,
    pub worker: f64,
    pub postgres: f64,
    pub rabbitmq: f64,
    pub bench: f64,
    pub other: f64,
    /// Busy CPU seconds of the whole machine.
    pub machine_busy: f64,
    /// Available CPU seconds (cores × wall time).
    pub machine_total: f64,
}

pub fn cpu_snapshot(pids: &Pids) -> CpuSnapshot {
    let mut snap = CpuSnapshot::default();
    let children: HashMap<String, Kind> = lock(pids)
        .values()
        .map(|(k, pid)| (pid.to_string(), *k))
        .collect();
    let me = std::process::id().to_string();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str() else { continue };
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Some((comm, ticks)) = proc_ticks(pid) else {
                continue;
            };
            let group = if let Some(kind) = children.get(pid) {
                kind.as_str()
            } else if pid == me {
                "bench"
            } else if comm == "postgres" || comm.starts_with("postgres") {
                "postgres"
            } else if comm == "beam.smp" || comm == "epmd" || comm.starts_with("erl") {
                "rabbitmq"
            } else {
                continue;
            };
            *snap.groups.entry(group).or_insert(0) += ticks;
        }
    }
    let (busy, total) = machine_ticks();
    snap.busy = busy;
    snap.total = total;
    snap
}

impl CpuSnapshot {
    /// What was used since `earlier`. Processes that died in between (a killed API) lose
    /// their ticks, so drills under-count; plain runs do not restart anything.
    pub fn since(&self, earlier: &CpuSnapshot) -> CpuUse {
        let hz = ticks_per_second();
        let d = |g: &str| {
            self.groups
                .get(g)
                .copied()
                .unwrap_or(0)
                .saturating_sub(earlier.groups.get(g).copied().unwrap_or(0)) as f64
                / hz
        };
        let busy = self.busy.saturating_sub(earlier.busy) as f64 / hz;
        let total = self.total.saturating_sub(earlier.total) as f64 / hz;
        let mut u = CpuUse {
            api: d("api"),
            worker: d("worker"),
            postgres: d("postgres"),
            rabbitmq: d("rabbitmq"),
            bench: d("bench"),
            other: 0.0,
            machine_busy: busy,
            machine_total: total,
        };
        u.other = (busy - u.api - u.worker - u.postgres - u.rabbitmq - u.bench).max(0.0);
        u
    }
}
