//! When each org is collected. A scrape only asks for collections and waits for them until
//! its own deadline; the collections run in their own tasks, at most `limit` at once, the
//! org refreshed least recently first, each with its own budget. So a scrape that gives up
//! neither cancels nor shortens a collection, and the next scrape finds it further along.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use futures::future::BoxFuture;

use super::follow::Collecting;
use super::org::Org;
use super::stream::Stream;
use crate::api::ApiClient;
use crate::config::SyncSettings;
use crate::lock::Locked;

/// What the scheduler runs: one org's own collection, or the enterprise stream's.
pub trait Job: Send + Sync + 'static {
    /// Its place with the scheduler.
    fn slot(&self) -> &Mutex<RunSlot>;
    /// Collects within `deadline` and records how that went.
    fn run<'a>(
        &'a self,
        client: &'a ApiClient,
        settings: &'a SyncSettings,
        deadline: Instant,
        collecting: &'a Collecting<'a>,
    ) -> BoxFuture<'a, ()>;
    /// Records a collection that ended without finishing (it panicked).
    fn abort(&self, reason: &str);
}

/// Both kinds of collection have the same `collect` and `record_abort`.
macro_rules! job {
    ($($t:ty),*) => {$(
        impl Job for $t {
            fn slot(&self) -> &Mutex<RunSlot> {
                &self.run
            }
            fn run<'a>(
                &'a self,
                client: &'a ApiClient,
                settings: &'a SyncSettings,
                deadline: Instant,
                collecting: &'a Collecting<'a>,
            ) -> BoxFuture<'a, ()> {
                Box::pin(self.collect(client, settings, deadline, collecting))
            }
            fn abort(&self, reason: &str) {
                self.record_abort(reason);
            }
        }
    )*};
}

job!(Org, Stream);

/// Place in the queue: orgs never collected first, then by when their last collection
/// finished; ties in the order they were asked for.
type Key = (Option<Instant>, u64);

/// An org's collection as the scheduler sees it, kept in the org.
#[derive(Debug, Default)]
pub struct RunSlot {
    /// The collection asked for and not finished yet (queued or running).
    active: Option<Active>,
    /// When the org's last collection finished.
    last_finished: Option<Instant>,
}

#[derive(Debug)]
struct Active {
    done: watch::Receiver<bool>,
    key: Key,
}

struct Queued {
    job: Arc<dyn Job>,
    budget: Duration,
    done: watch::Sender<bool>,
}

#[derive(Default)]
struct Queue {
    running: usize,
    next_seq: u64,
    waiting: BTreeMap<Key, Queued>,
}

struct Inner {
    client: Arc<ApiClient>,
    settings: Arc<SyncSettings>,
    queue: Mutex<Queue>,
}

/// Runs the orgs' collections; see the module documentation.
pub struct Scheduler {
    inner: Arc<Inner>,
}

/// Lock order: an org's run slot before the queue.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.locked()
}

/// How long a collection asked for by a scrape with `remaining` time may run: never less than
/// `floor`, however little time the client gave, and a little less than the scrape's time, so
/// that a collection the deadline interrupts has recorded its result when the scrape answers.
pub fn collection_budget(remaining: Duration, floor: Duration) -> Duration {
    let budget = remaining.max(floor);
    budget.saturating_sub((budget / 10).min(Duration::from_millis(500)))
}

impl Scheduler {
    /// A scheduler of collections made with `client` and `settings`.
    pub fn new(client: Arc<ApiClient>, settings: Arc<SyncSettings>) -> Self {
        Scheduler {
            inner: Arc::new(Inner {
                client,
                settings,
                queue: Mutex::new(Queue::default()),
            }),
        }
    }

    /// Asks for a collection of `job` (an org, or the stream) or joins the one asked for
    /// already, and waits for it until `deadline`, no longer: the collection itself goes on
    /// with its own budget.
    pub async fn collect<J: Job>(&self, job: &Arc<J>, deadline: Instant) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let budget = collection_budget(remaining, self.inner.settings.scrape_timeout);
        let job: Arc<dyn Job> = Arc::clone(job) as Arc<dyn Job>;
        let mut done = self.request(&job, budget);
        let _ = tokio::time::timeout_at(deadline, done.wait_for(|finished| *finished)).await;
    }

    fn request(&self, job: &Arc<dyn Job>, budget: Duration) -> watch::Receiver<bool> {
        let mut slot = lock(job.slot());
        if let Some(active) = &slot.active {
            // Still queued: it gets the longest budget any scrape asked for.
            if let Some(queued) = lock(&self.inner.queue).waiting.get_mut(&active.key) {
                queued.budget = queued.budget.max(budget);
            }
            return active.done.clone();
        }
        let (tx, rx) = watch::channel(false);
        {
            let mut queue = lock(&self.inner.queue);
            let key = (slot.last_finished, queue.next_seq);
            queue.next_seq += 1;
            queue.waiting.insert(
                key,
                Queued {
                    job: Arc::clone(job),
                    budget,
                    done: tx,
                },
            );
            slot.active = Some(Active {
                done: rx.clone(),
                key,
            });
        }
        drop(slot);
        Inner::start_waiting(&self.inner);
        rx
    }
}

impl Inner {
    /// Starts queued collections while fewer than the limit run.
    fn start_waiting(inner: &Arc<Inner>) {
        // Without a runtime (shutting down) nothing starts; what is queued stays queued.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let limit = inner.settings.max_concurrent_requests.max(1);
        let mut starting = Vec::new();
        {
            let mut queue = lock(&inner.queue);
            while queue.running < limit {
                let Some((_, job)) = queue.waiting.pop_first() else {
                    break;
                };
                queue.running += 1;
                starting.push(job);
            }
        }
        // Spawned without the queue's lock: a runtime that is shutting down drops the task at
        // once, and its guard takes the lock.
        for job in starting {
            // Made before the task so that its cleanup runs even if the task never does.
            let guard = RunGuard {
                inner: Arc::clone(inner),
                job: Arc::clone(&job.job),
                done: Some(job.done),
                started: false,
                finished: false,
            };
            runtime.spawn(run(guard, job.budget));
        }
    }
}

async fn run(mut guard: RunGuard, budget: Duration) {
    guard.started = true;
    let deadline = Instant::now() + budget;
    let inner = Arc::clone(&guard.inner);
    let collecting = || lock(&inner.queue).running;
    guard
        .job
        .run(&inner.client, &inner.settings, deadline, &collecting)
        .await;
    guard.finished = true;
}

/// Ends a collection however it ends (a panic included): the org is marked down if the
/// collection did not finish, its slot is released so the next scrape collects it again,
/// waiters are woken, and the next queued collection starts.
struct RunGuard {
    inner: Arc<Inner>,
    job: Arc<dyn Job>,
    done: Option<watch::Sender<bool>>,
    started: bool,
    finished: bool,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if self.started && !self.finished {
            self.job.abort("internal error during collection");
        }
        {
            let mut slot = lock(self.job.slot());
            slot.active = None;
            slot.last_finished = Some(Instant::now());
        }
        if let Some(done) = self.done.take() {
            done.send_replace(true);
        }
        {
            let mut queue = lock(&self.inner.queue);
            queue.running = queue.running.saturating_sub(1);
        }
        // A task dropped before it ran was dropped by a runtime shutting down: start no more.
        if self.started {
            Inner::start_waiting(&self.inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_has_a_floor_and_ends_before_the_scrape() {
        let floor = Duration::from_secs(25);
        let ms = Duration::from_millis;
        assert_eq!(collection_budget(ms(100), floor), ms(24_500));
        assert_eq!(collection_budget(Duration::ZERO, floor), ms(24_500));
        assert_eq!(collection_budget(ms(59_000), floor), ms(58_500));
        assert_eq!(collection_budget(ms(1750), ms(1000)), ms(1575));
        assert_eq!(collection_budget(ms(100), Duration::ZERO), ms(90));
    }
}
