//! How fast the cores ran, second by second.
//!
//! A shared host can slow our virtual CPUs without taking them away: a neighbour on the
//! other hyperthread of the same physical core, a lower clock. Steal (`/proc/stat`) does not
//! show that; the same work simply costs more CPU time. Seen here: two runs of the same code
//! at the same rate, no steal in either, and every process (the load generator too) used
//! about 23 % more CPU in one than in the other (docs/PERFORMANCE.md, session 11). A run
//! measured against the machine's own limit is only as good as that limit staying put, so
//! the bench times a fixed piece of work on its own thread all through each phase.
//!
//! The work is an arithmetic loop that stays in registers: it needs no memory, so it
//! measures the core (its clock and what shares it) and not the caches the hub fills. It is
//! timed in the thread's CPU time, not wall time, so waiting for a core (our own load, or
//! steal) does not count; only how long the core took to do it once it ran. A unit took
//! 366-394 µs on session 11's machine and runs every 50 ms: under 1 % of one core.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Iterations of one unit of work (366-394 µs of CPU on session 11's machine).
const UNIT_ITERATIONS: u64 = 200_000;
const EVERY: Duration = Duration::from_millis(50);

/// One unit of fixed work; the result is only there so the loop cannot be optimised away.
fn unit() -> u64 {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut acc: u64 = 0;
    for i in 0..UNIT_ITERATIONS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc = acc.wrapping_add(x.wrapping_mul(i | 1));
    }
    std::hint::black_box(acc)
}

fn thread_cpu_ns() -> u128 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    u128::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u128::try_from(t.tv_nsec).unwrap_or(0)
}

/// CPU microseconds one unit took, timed on the calling thread.
fn time_unit() -> f64 {
    let before = thread_cpu_ns();
    unit();
    (thread_cpu_ns().saturating_sub(before)) as f64 / 1000.0
}

/// The median CPU time of `n` units run back to back on a thread of its own: the cores'
/// speed when the bench starts, before the stack has load.
pub fn calibrate(n: usize) -> Option<f64> {
    std::thread::spawn(move || {
        let mut v: Vec<f64> = (0..n).map(|_| time_unit()).collect();
        median(&mut v)
    })
    .join()
    .ok()
    .flatten()
}

pub fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// Times a unit every 50 ms on its own thread until finished.
pub struct Probe {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(Duration, f64)>>,
}

impl Probe {
    pub fn spawn() -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("speed-probe".into())
            .spawn(move || {
                let start = Instant::now();
                let mut samples = Vec::new();
                let mut next = start;
                while !flag.load(Ordering::Relaxed) {
                    samples.push((start.elapsed(), time_unit()));
                    next += EVERY;
                    // Behind (the machine is saturated): the next unit at once, not a burst.
                    // Parked rather than asleep, so `finish` wakes it at once.
                    match next.checked_duration_since(Instant::now()) {
                        Some(wait) => std::thread::park_timeout(wait),
                        None => next = Instant::now(),
                    }
                }
                samples
            })?;
        Ok(Probe { stop, thread })
    }

    /// The units' CPU microseconds, as (time since the probe started, µs).
    pub fn finish(self) -> Vec<(Duration, f64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.thread().unpark();
        self.thread.join().unwrap_or_default()
    }
}

/// The median per whole second since the probe started (index = second).
pub fn per_second(samples: &[(Duration, f64)]) -> Vec<Option<f64>> {
    let seconds = samples
        .iter()
        .map(|(at, _)| at.as_secs() as usize + 1)
        .max()
        .unwrap_or(0);
    let mut by: Vec<Vec<f64>> = vec![Vec::new(); seconds];
    for (at, us) in samples {
        by[at.as_secs() as usize].push(*us);
    }
    by.into_iter().map(|mut v| median(&mut v)).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;

    #[test]
    fn the_median_is_the_middle_sample_and_none_of_nothing() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(3.0));
    }

    #[test]
    fn samples_fall_into_the_second_they_were_taken_in() {
        let s = [
            (Duration::from_millis(10), 1.0),
            (Duration::from_millis(900), 3.0),
            (Duration::from_millis(950), 2.0),
            (Duration::from_millis(2100), 7.0),
        ];
        assert_eq!(per_second(&s), vec![Some(2.0), None, Some(7.0)]);
    }

    #[test]
    fn a_unit_takes_cpu_time_and_the_probe_samples_while_it_runs() {
        let idle = calibrate(5).expect("five units");
        assert!(idle > 0.0, "a unit of work took no CPU time");
        let probe = Probe::spawn().expect("a thread");
        std::thread::sleep(Duration::from_millis(180));
        let samples = probe.finish();
        assert!(
            (1..=5).contains(&samples.len()),
            "one unit per 50 ms over 180 ms, got {}",
            samples.len()
        );
        assert!(samples.iter().all(|(_, us)| *us > 0.0));
    }
}
