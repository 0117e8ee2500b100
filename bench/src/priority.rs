//! The load generator's own runtime, its threads at a higher CPU priority than the stack.
//!
//! A partner app runs on its own machine; here the generator shares two cores with the API,
//! the worker, Postgres and RabbitMQ. At half the maximum rate those keep the run queue
//! long, and a generator thread that waits for a CPU sends late and reads an answer late:
//! that wait is counted as the hub's latency although no partner would see it. Measured
//! before this runtime (docs/PERFORMANCE.md, session 10): the generator began sending
//! 1.2 ms after a request was due at the median and 5.8 ms at p99, up to 23.5 ms. So the
//! generator runs its requests on threads of their own, at a lower nice value (more CPU
//! share, and they preempt the stack when they wake), while everything else of the bench
//! (starting and killing processes, the baselines' bookkeeping, the webhook receiver) stays
//! at the priority it was started with, and so do the processes it starts.
//!
//! Lowering a nice value needs CAP_SYS_NICE (root on the benchmark machines); without it
//! the generator runs at the normal priority and the report says so.

use std::{
    future::Future,
    sync::{Arc, Mutex},
};

use anyhow::Context;

/// What the generator's threads got: the nice value they run at, or the first refusal.
type Outcome = Arc<Mutex<Option<Result<i32, String>>>>;

pub struct GeneratorRuntime {
    rt: Option<tokio::runtime::Runtime>,
    asked: i32,
    outcome: Outcome,
}

impl GeneratorRuntime {
    /// A runtime with one worker thread a core, each at nice `nice`.
    pub fn new(nice: i32) -> anyhow::Result<Self> {
        let outcome: Outcome = Arc::default();
        let recorded = outcome.clone();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(crate::sys::cpu_count().max(1))
            .thread_name("bench-generator")
            .enable_all()
            // On Linux a nice value belongs to a thread; `None` is the calling one.
            .on_thread_start(move || {
                let got = rustix::process::setpriority_process(None, nice)
                    .and_then(|()| rustix::process::getpriority_process(None))
                    .map_err(|e| e.to_string());
                if let Ok(mut slot) = recorded.lock() {
                    // A refusal, once seen, stays: some threads would run at the old priority.
                    if !matches!(*slot, Some(Err(_))) {
                        *slot = Some(got);
                    }
                }
            })
            .build()
            .context("cannot start the generator's runtime")?;
        Ok(GeneratorRuntime {
            rt: Some(rt),
            asked: nice,
            outcome,
        })
    }

    /// Runs `fut` on the generator's threads and waits for it from the caller's runtime.
    pub async fn run<F, T>(&self, fut: F) -> anyhow::Result<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.spawn(fut)?
            .await
            .context("the generator's task failed")
    }

    /// Starts `fut` on the generator's threads.
    pub fn spawn<F, T>(&self, fut: F) -> anyhow::Result<tokio::task::JoinHandle<T>>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let rt = self
            .rt
            .as_ref()
            .context("the generator's runtime is shut down")?;
        Ok(rt.spawn(fut))
    }

    fn outcome(&self) -> Option<Result<i32, String>> {
        self.outcome.lock().ok().and_then(|o| o.clone())
    }

    /// The nice value the generator's threads run at, if it was set.
    pub fn nice(&self) -> Option<i32> {
        self.outcome().and_then(Result::ok)
    }

    /// For the report: the nice value asked for, and what the threads got.
    pub fn describe(&self) -> String {
        match self.outcome() {
            Some(Ok(n)) => {
                format!("generator threads: nice {n} (the stack's processes: as started)")
            }
            Some(Err(e)) => format!(
                "generator threads: nice {} refused ({e}); they run at the stack's priority",
                self.asked
            ),
            None => "generator threads: priority unknown".to_owned(),
        }
    }
}

impl Drop for GeneratorRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside the bench's own runtime; its tasks
        // have all finished by now, so nothing is lost by not waiting.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
