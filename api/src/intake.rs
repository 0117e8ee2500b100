//! Writing the complaints partners file: a few writers per API process, each filing in one
//! transaction whatever has arrived while it was busy.
//!
//! A filing is one call of a Postgres function and one commit (`db::intake`). About a third
//! of what that cost was the call and the commit themselves, not the rows: with pgbench,
//! the same filings made eight to a transaction took about 0.5 ms of the machine's CPU
//! each, against 0.7-0.8 ms alone (docs/PERFORMANCE.md). So `POST /v1/complaints`
//! hands its filing to an [`IntakeWriter`] and waits for the outcome. A free writer takes
//! the filing at once, alone, so a quiet API answers as soon as it did before; when all
//! writers are busy, the filings that arrive meanwhile wait, and the next free writer files
//! up to `intake.max_batch` of them together (`redress_file_complaints`, migration 000017).
//!
//! Each filing's outcome is the one it would have had alone: the batch files them in
//! order, and nobody is answered before the batch has committed. A batch that fails is
//! filed again one filing at a time, so one filing's error is reported to its request
//! alone and the others are written.

use std::sync::Arc;

use redress_shared::{
    config::IntakeSettings,
    db::{
        intake::{self, Filed, FilingValues},
        DbError, PgPool,
    },
};
use tokio::sync::{mpsc, oneshot, Mutex};

struct Job {
    values: FilingValues,
    reply: oneshot::Sender<Result<Filed, DbError>>,
}

/// Where handlers send filings; cheap to clone.
#[derive(Clone)]
pub struct IntakeWriter {
    jobs: mpsc::Sender<Job>,
}

impl IntakeWriter {
    /// Starts `settings.writers` writers (at most the pool's size) on the current runtime.
    /// They stop once every handle is dropped and the filings already sent are written.
    pub fn start(pool: PgPool, settings: &IntakeSettings) -> Self {
        // Each writer holds a pooled connection while it writes; more than the pool has
        // would only wait for one.
        let writers = settings.writers.min(pool.status().max_size).max(1);
        let max_batch = settings.max_batch.max(1);
        // Bounded: when Postgres falls behind, requests wait here (and then time out at
        // the client) instead of piling up in memory.
        let (jobs, queue) = mpsc::channel(writers.saturating_mul(max_batch).saturating_mul(4));
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..writers {
            tokio::spawn(write_batches(pool.clone(), queue.clone(), max_batch));
        }
        Self { jobs }
    }

    /// Files one complaint, in a batch with whatever else is waiting, and answers its
    /// outcome once the batch has committed.
    pub async fn file(&self, values: FilingValues) -> Result<Filed, DbError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { values, reply })
            .await
            .map_err(|_| DbError::Pool("the intake writers have stopped".into()))?;
        answer
            .await
            .map_err(|_| DbError::Pool("an intake writer stopped before answering".into()))?
    }
}

async fn write_batches(pool: PgPool, queue: Arc<Mutex<mpsc::Receiver<Job>>>, max_batch: usize) {
    loop {
        // One idle writer waits for the queue at a time; it takes the first filing and all
        // that are already waiting behind it, and lets the next writer wait.
        let batch = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < max_batch {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        write(&pool, batch).await;
    }
}

async fn write(pool: &PgPool, batch: Vec<Job>) {
    let (values, replies): (Vec<FilingValues>, Vec<_>) =
        batch.into_iter().map(|j| (j.values, j.reply)).unzip();
    // A request that gave up meanwhile has dropped its receiver: its complaint is written
    // all the same, and a retry with its Idempotency-Key gets the answer.
    for (reply, outcome) in replies.into_iter().zip(file_together(pool, &values).await) {
        let _ = reply.send(outcome);
    }
}

/// Files `values` in one transaction, each as it would have been filed alone, and answers
/// an outcome per filing, in order. When the transaction fails, nothing of it was written
/// and each filing is filed again alone, so the filing at fault gets its own error and the
/// others are written.
pub async fn file_together(pool: &PgPool, values: &[FilingValues]) -> Vec<Result<Filed, DbError>> {
    let mut conn = match pool.get().await {
        Ok(conn) => conn,
        Err(e) => {
            let e = e.to_string();
            return values
                .iter()
                .map(|_| Err(DbError::Pool(e.clone())))
                .collect();
        }
    };
    match intake::file_many(&mut conn, values).await {
        Ok(filed) => filed.into_iter().map(Ok).collect(),
        Err(e) if values.len() > 1 => {
            tracing::warn!(error = %e, filings = values.len(), "an intake batch failed; filing each alone");
            let mut outcomes = Vec::with_capacity(values.len());
            for v in values {
                outcomes.push(
                    intake::file_values(&mut conn, v)
                        .await
                        .map_err(DbError::from),
                );
            }
            outcomes
        }
        // One filing (or none): the error is its own.
        Err(e) => vec![Err(DbError::from(e))],
    }
}
