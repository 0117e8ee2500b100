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
    meminfo_kb("MemTotal:").map_or(0.0, |kib| kib / 1024.0 / 1024.0)
}

/// One field of `/proc/meminfo`, in kB.
fn meminfo_kb(field: &str) -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    field_kb(&text, field)
}

/// `field` (with its colon) of a `/proc/meminfo` text, in kB.
fn field_kb(meminfo: &str, field: &str) -> Option<f64> {
    meminfo
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The kernel's page-cache writeback settings, as `/proc/sys/vm` has them.
const WRITEBACK: &[&str] = &[
    "dirty_background_bytes",
    "dirty_background_ratio",
    "dirty_bytes",
    "dirty_ratio",
    "dirty_expire_centisecs",
    "dirty_writeback_centisecs",
];

pub fn writeback_settings() -> std::collections::BTreeMap<String, String> {
    WRITEBACK
        .iter()
        .filter_map(|name| {
            let value = std::fs::read_to_string(format!("/proc/sys/vm/{name}")).ok()?;
            Some(((*name).to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// `dirty_background_ratio 10, …` in the order of [`WRITEBACK`].
pub fn writeback_line(settings: &std::collections::BTreeMap<String, String>) -> String {
    WRITEBACK
        .iter()
        .filter_map(|name| settings.get(*name).map(|v| format!("{name} {v}")))
        .collect::<Vec<_>>()
        .join(", ")
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

/// Busy, total and stolen ticks of the whole machine.
///
/// Steal is the time a virtual CPU wanted to run and the hypervisor ran something else:
/// on a shared host it is the neighbours' load, and a phase with much of it measures the
/// host as much as the hub. It counts as busy, as the machine could not use it.
fn machine_ticks() -> MachineTicks {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().next() else {
        return MachineTicks::default();
    };
    // user nice system idle iowait irq softirq steal guest guest_nice: guest time is
    // already counted in user and nice, so only the first eight add up to the total.
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    MachineTicks {
        busy: total.saturating_sub(idle),
        total,
        steal: v.get(7).copied().unwrap_or(0),
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct MachineTicks {
    busy: u64,
    total: u64,
    steal: u64,
}

/// The machine's busy and stolen shares of one second of a phase, and how long the cores
/// took over a unit of fixed work in it (`speed`).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct MachineSecond {
    pub busy_share: f64,
    pub steal_share: f64,
    /// CPU microseconds of a unit of fixed work (median of the second's units).
    pub work_us: Option<f64>,
    /// MB the machine's disks wrote in the second (`/sys/block/*/stat`), and the page
    /// cache's dirty MB at its end (`/proc/meminfo`): the kernel writing back a file's
    /// dirty pages all at once, which the commits' WAL flushes queue behind, shows here
    /// (docs/PERFORMANCE.md, sessions 9 and 11).
    pub disk_written_mb: f64,
    pub dirty_mb: f64,
}

/// Sectors (512 bytes) written so far by the machine's disks: whole devices only (a
/// partition's writes are its disk's too), without loop and RAM devices.
fn disk_sectors_written() -> u64 {
    let Ok(dir) = std::fs::read_dir("/sys/block") else {
        return 0;
    };
    dir.flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !(name.starts_with("loop") || name.starts_with("ram") || name.starts_with("zram"))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| sectors_written(&stat))
        .sum()
}

/// The sectors written, from a device's `stat`: its seventh field
/// (Documentation/block/stat.rst).
fn sectors_written(stat: &str) -> Option<u64> {
    stat.split_whitespace().nth(6)?.parse().ok()
}

/// The page cache's dirty memory, MB (`Dirty:` of `/proc/meminfo`, in kB).
fn dirty_mb() -> f64 {
    meminfo_kb("Dirty:").map_or(0.0, |kb| kb / 1024.0)
}

/// What the host did over a phase: each second, and the fixed work's median over all.
#[derive(Debug, Default)]
pub struct HostSeconds {
    pub seconds: Vec<MachineSecond>,
    pub work_us: Option<f64>,
}

/// Samples the machine's CPU once a second, and times fixed work on a thread of its own,
/// until finished, so a phase's bad seconds can be set beside what the host was doing in
/// them.
pub struct SecondSampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Vec<MachineSecond>>,
    probe: Option<crate::speed::Probe>,
}

impl SecondSampler {
    pub fn spawn() -> Self {
        // Without a thread for it the run goes on, with no speed figures.
        let probe = crate::speed::Probe::spawn().ok();
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut seconds = Vec::new();
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.tick().await;
            let mut last = machine_ticks();
            let mut last_sectors = disk_sectors_written();
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {
                        let now = machine_ticks();
                        let sectors = disk_sectors_written();
                        let total = now.total.saturating_sub(last.total).max(1) as f64;
                        seconds.push(MachineSecond {
                            busy_share: now.busy.saturating_sub(last.busy) as f64 / total,
                            steal_share: now.steal.saturating_sub(last.steal) as f64 / total,
                            work_us: None,
                            disk_written_mb: sectors.saturating_sub(last_sectors) as f64 * 512.0
                                / 1_048_576.0,
                            dirty_mb: dirty_mb(),
                        });
                        last = now;
                        last_sectors = sectors;
                    }
                }
            }
            seconds
        });
        SecondSampler { stop, task, probe }
    }

    /// The seconds sampled, first to last.
    pub async fn finish(self) -> HostSeconds {
        let _ = self.stop.send(());
        let mut seconds = self.task.await.unwrap_or_default();
        let Some(probe) = self.probe else {
            return HostSeconds {
                seconds,
                work_us: None,
            };
        };
        // Joining waits for at most the unit under way (a fraction of a millisecond).
        let samples = probe.finish();
        // Both started together, so the probe's n-th second is the sampler's.
        for (second, work) in seconds.iter_mut().zip(crate::speed::per_second(&samples)) {
            second.work_us = work;
        }
        let mut all: Vec<f64> = samples.iter().map(|(_, us)| *us).collect();
        HostSeconds {
            seconds,
            work_us: crate::speed::median(&mut all),
        }
    }
}

/// CPU ticks consumed so far, by group.
#[derive(Clone, Debug, Default)]
pub struct CpuSnapshot {
    groups: HashMap<&'static str, u64>,
    machine: MachineTicks,
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
    /// CPU seconds the hypervisor gave to other guests while ours wanted them (part of
    /// `machine_busy` and of `other`).
    pub machine_steal: f64,
}

impl CpuUse {
    /// Stolen share of the phase's CPU time, 0 to 1.
    pub fn steal_share(&self) -> f64 {
        if self.machine_total > 0.0 {
            self.machine_steal / self.machine_total
        } else {
            0.0
        }
    }
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
    snap.machine = machine_ticks();
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
        let m = |now: u64, then: u64| now.saturating_sub(then) as f64 / hz;
        let busy = m(self.machine.busy, earlier.machine.busy);
        let total = m(self.machine.total, earlier.machine.total);
        let mut u = CpuUse {
            api: d("api"),
            worker: d("worker"),
            postgres: d("postgres"),
            rabbitmq: d("rabbitmq"),
            bench: d("bench"),
            other: 0.0,
            machine_busy: busy,
            machine_total: total,
            machine_steal: m(self.machine.steal, earlier.machine.steal),
        };
        u.other = (busy - u.api - u.worker - u.postgres - u.rabbitmq - u.bench).max(0.0);
        u
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sectors_written_are_the_seventh_field_of_a_devices_stat() {
        let stat = "  152056    12179  9521290   244811  4684343   416823 164534400  1058937        3   292220  1389257";
        assert_eq!(sectors_written(stat), Some(164_534_400));
        assert_eq!(sectors_written("1 2 3"), None);
    }

    #[test]
    fn a_meminfo_field_is_read_from_its_own_line() {
        let meminfo =
            "MemTotal:       24590000 kB\nDirty:             12345 kB\nWriteback:           0 kB\n";
        assert_eq!(field_kb(meminfo, "Dirty:"), Some(12_345.0));
        assert_eq!(field_kb(meminfo, "MemTotal:"), Some(24_590_000.0));
        assert_eq!(field_kb("MemTotal: 1 kB\n", "Dirty:"), None);
    }
}
