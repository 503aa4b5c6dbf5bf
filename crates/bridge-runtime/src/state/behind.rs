//! Committed state reaches sled on a thread of its own ("write-behind"). A commit hands
//! its batch over and the loop goes on with the next records; until the batch is in sled
//! its writes are read from the queue, so a read always sees every committed write.
//!
//! Why: applying a batch to sled (one tree insert per key written) was the largest single
//! cost of the processing thread (29 % in the aggregator benchmark) while the second core
//! idled. Durability does not change: sled is never the durable copy — the changelog is.
//! An unclean stop rebuilds the state from it whatever sled holds; a clean stop drains
//! the queue and flushes before it writes its checkpoint.
//!
//! Without write-behind (the default) the same thread applies a batch while Kafka commits
//! its transaction, and the loop waits for it at the end of the commit: sled is never read
//! and written at once (sled 0.34 has a reported deadlock under concurrent reads and
//! writes), yet its apply overlaps the broker round trips.
//!
//! One queue per processing loop (per sled database), batches applied in commit order.
//! The loop is the only writer, so a read that misses the queue and then reads sled cannot
//! miss a batch: one leaves the queue only after it is in sled.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use super::{StateError, Write};

/// At most this many batches wait for sled; a commit beyond it waits (backpressure).
const MAX_QUEUED: usize = 32;

/// A committed batch of one tree, its writes in key order, one per key.
pub(super) struct Batch {
    pub(super) tree: sled::Tree,
    pub(super) name: String,
    pub(super) writes: Vec<Write>,
    pub(super) offset: i64,
}

#[derive(Default)]
struct Queue {
    batches: VecDeque<Arc<Batch>>,
    failure: Option<String>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
        self.changed
            .wait(guard)
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits like [`Shared::wait`], saying so in the log every [`STALL_WARNING`] (a loop
    /// that waits on its state writer must never be silent about it).
    fn wait_noisily<'a>(&self, guard: MutexGuard<'a, Queue>, why: &str) -> MutexGuard<'a, Queue> {
        let (guard, timeout) = self
            .changed
            .wait_timeout(guard, STALL_WARNING)
            .unwrap_or_else(PoisonError::into_inner);
        if timeout.timed_out() {
            tracing::warn!(
                queued = guard.batches.len(),
                waited_s = STALL_WARNING.as_secs(),
                "{why}: the state writer has not finished a batch"
            );
        }
        guard
    }
}

/// How long a loop waits on the state writer before it logs that it does.
const STALL_WARNING: std::time::Duration = std::time::Duration::from_secs(30);

fn failed(queue: &Queue) -> Result<(), StateError> {
    match &queue.failure {
        Some(reason) => Err(StateError::Behind {
            reason: reason.clone(),
        }),
        None => Ok(()),
    }
}

/// The write-behind thread of one sled database. Dropping it applies what is queued and
/// joins the thread.
pub struct WriteBehind {
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

/// What a store holds to queue batches and read them back.
#[derive(Clone)]
pub(super) struct Behind(Arc<Shared>);

impl WriteBehind {
    /// Starts the thread. Submitting never waits (but for room in the queue): a loop
    /// without write-behind calls [`WriteBehind::drain`] at the end of its commit.
    pub fn start() -> Result<Self, StateError> {
        let shared = Arc::new(Shared::default());
        let worker = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("state-writer".into())
                .spawn(move || write_batches(&shared))
                .map_err(|e| StateError::Behind {
                    reason: format!("cannot start the state writer thread: {e}"),
                })?
        };
        Ok(Self {
            shared,
            worker: Some(worker),
        })
    }

    /// Waits until every queued batch is in sled (before a flush and a clean checkpoint).
    pub fn drain(&self) -> Result<(), StateError> {
        self.behind().drain()
    }

    /// A queue nobody writes to sled: batches stay queued (tests of the read path).
    #[cfg(test)]
    pub(super) fn stalled() -> Self {
        Self {
            shared: Arc::new(Shared::default()),
            worker: None,
        }
    }

    pub(super) fn behind(&self) -> Behind {
        Behind(Arc::clone(&self.shared))
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn write_batches(shared: &Shared) {
    loop {
        let batch = {
            let mut queue = shared.lock();
            loop {
                if let Some(batch) = queue.batches.front() {
                    break Arc::clone(batch);
                }
                if queue.closed {
                    return;
                }
                queue = shared.wait(queue);
            }
        };
        // A panic in sled must not leave the loop waiting for a thread that is gone.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write(&batch)))
            .unwrap_or_else(|panic| {
                let reason = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(sled::Error::ReportableBug(format!(
                    "sled panicked: {reason}"
                )))
            });
        let mut queue = shared.lock();
        queue.batches.pop_front();
        if let Err(e) = result {
            tracing::error!(tree = %batch.name, error = %e, "state writes to sled failed");
            queue.failure = Some(format!("tree `{}`: {e}", batch.name));
            queue.batches.clear();
        }
        shared.changed.notify_all();
    }
}

fn write(batch: &Batch) -> Result<(), sled::Error> {
    let mut sled_batch = sled::Batch::default();
    for write in &batch.writes {
        match &write.value {
            Some(value) => sled_batch.insert(write.key.as_slice(), value.as_slice()),
            None => sled_batch.remove(write.key.as_slice()),
        }
    }
    sled_batch.insert(super::keys::APPLIED_OFFSET, &batch.offset.to_be_bytes());
    batch.tree.apply_batch(sled_batch)
}

impl Behind {
    /// Queues a batch, waiting while the queue is full.
    pub(super) fn submit(&self, batch: Batch) -> Result<(), StateError> {
        let mut queue = self.0.lock();
        while queue.batches.len() >= MAX_QUEUED && queue.failure.is_none() {
            queue = self
                .0
                .wait_noisily(queue, "commit waits for room in the queue");
        }
        failed(&queue)?;
        queue.batches.push_back(Arc::new(batch));
        drop(queue);
        self.0.changed.notify_all();
        Ok(())
    }

    /// The newest queued write of `key` in tree `name`: `Some(None)` is a queued delete,
    /// `None` means sled has the answer.
    pub(super) fn get(
        &self,
        name: &str,
        key: &[u8],
    ) -> Result<Option<Option<Vec<u8>>>, StateError> {
        let queue = self.0.lock();
        failed(&queue)?;
        for batch in queue.batches.iter().rev().filter(|b| b.name == name) {
            if let Ok(i) = batch.writes.binary_search_by(|w| w.key.as_slice().cmp(key)) {
                return Ok(Some(batch.writes[i].value.clone()));
            }
        }
        Ok(None)
    }

    /// The queued writes of tree `name` with `start <= key < end`, newest per key.
    pub(super) fn laid_over(
        &self,
        name: &str,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<BTreeMap<Vec<u8>, Option<Vec<u8>>>, StateError> {
        let queue = self.0.lock();
        failed(&queue)?;
        let mut over = BTreeMap::new();
        for batch in queue.batches.iter().filter(|b| b.name == name) {
            let from = batch.writes.partition_point(|w| w.key.as_slice() < start);
            let writes = batch.writes[from..]
                .iter()
                .take_while(|w| end.is_none_or(|end| w.key.as_slice() < end));
            for write in writes {
                over.insert(write.key.clone(), write.value.clone());
            }
        }
        Ok(over)
    }

    /// Waits until the queue is empty.
    pub(super) fn drain(&self) -> Result<(), StateError> {
        let mut queue = self.0.lock();
        while !queue.batches.is_empty() && queue.failure.is_none() {
            queue = self
                .0
                .wait_noisily(queue, "waiting until committed state is in sled");
        }
        failed(&queue)
    }
}

/// `writes` in key order with one write per key (the last one), as batches keep them.
pub(super) fn in_key_order(mut writes: Vec<Write>) -> Vec<Write> {
    if writes.windows(2).all(|w| w[0].key < w[1].key) {
        return writes;
    }
    // Latest first, so a stable sort keeps the last write of a key at the head of its run.
    writes.reverse();
    writes.sort_by(|a, b| a.key.cmp(&b.key));
    writes.dedup_by(|later, first| later.key == first.key);
    writes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> Write {
        Write {
            key: key.as_bytes().to_vec(),
            value: Some(value.as_bytes().to_vec()),
        }
    }

    #[test]
    fn batches_are_put_in_key_order_with_the_last_write_of_each_key() {
        let writes = vec![put("b", "1"), put("a", "1"), put("b", "2"), put("c", "1")];
        let ordered = in_key_order(writes);
        assert_eq!(ordered, vec![put("a", "1"), put("b", "2"), put("c", "1")]);
        let sorted = vec![put("a", "1"), put("b", "1")];
        assert_eq!(in_key_order(sorted.clone()), sorted);
    }
}
