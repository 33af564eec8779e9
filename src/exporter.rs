//! The exporter: the configured orgs, the API client, and collections that scrapes trigger.
//! Scrapes arriving while a collection runs share it, so an HA pair of Prometheus servers
//! does not double the load on the API.

use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt, Shared};
use futures::stream::{self, StreamExt};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::api::ApiClient;
use crate::sync::{Org, SyncSettings};

/// Orgs collected at once; requests are capped separately by the request budget.
const ORG_CONCURRENCY: usize = 8;

type SharedCollection = Shared<BoxFuture<'static, ()>>;

/// Orgs, client and the collection in flight.
pub struct Exporter {
    orgs: Vec<Arc<Org>>,
    client: ApiClient,
    settings: SyncSettings,
    inflight: Mutex<Option<SharedCollection>>,
}

impl Exporter {
    /// An exporter for `org_ids`.
    pub fn new(org_ids: &[String], client: ApiClient, settings: SyncSettings) -> Self {
        Exporter {
            orgs: org_ids
                .iter()
                .map(|id| Arc::new(Org::new(id.clone())))
                .collect(),
            client,
            settings,
            inflight: Mutex::new(None),
        }
    }

    /// The configured orgs, in configuration order.
    pub fn orgs(&self) -> &[Arc<Org>] {
        &self.orgs
    }

    /// Runs a collection of every org within `deadline`, or joins the one already running.
    /// The collection runs in its own task: a scrape that gives up does not cancel it.
    pub async fn collect(self: &Arc<Self>, deadline: Instant) {
        let shared = {
            let mut slot = self.inflight.lock().await;
            match slot.as_ref() {
                Some(running) => running.clone(),
                None => {
                    let me = Arc::clone(self);
                    let task = tokio::spawn(async move {
                        me.collect_all(deadline).await;
                        *me.inflight.lock().await = None;
                    });
                    let shared = async move {
                        if let Err(e) = task.await {
                            tracing::error!(error = %e, "collection task failed");
                        }
                    }
                    .boxed()
                    .shared();
                    *slot = Some(shared.clone());
                    shared
                }
            }
        };
        shared.await;
    }

    async fn collect_all(&self, deadline: Instant) {
        stream::iter(self.orgs.iter())
            .for_each_concurrent(ORG_CONCURRENCY, |org| {
                org.collect(&self.client, &self.settings, deadline)
            })
            .await;
    }
}
