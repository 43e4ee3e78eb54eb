//! Delivery of back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.5): each
//! is POSTed as a form to the application's `backchannel_logout_uri`, in the background.
//!
//! Bounded everywhere, so no application can slow a sign-out or pile up memory: the queue
//! holds at most [`DeliveryPolicy::queue`] tokens (more are dropped and logged), at most
//! [`DeliveryPolicy::concurrent`] are in flight, each attempt has the fetcher's time limits, and
//! a token is tried [`DeliveryPolicy::attempts`] times with growing pauses. Nothing is stored:
//! the instance that signed the user out delivers, and a token still queued when it stops is
//! lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gatehouse_core::logout::{LogoutDelivery, LogoutSender};
use reqwest::header::CONTENT_TYPE;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;
use url::Url;

use crate::fetch::{FetchError, Fetcher, check_url};

/// The bounds of delivery.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryPolicy {
    /// Tokens waiting for delivery, at most.
    pub queue: usize,
    /// Deliveries in flight at once, at most.
    pub concurrent: usize,
    /// Attempts per token, the first included.
    pub attempts: u32,
    /// The pause before the second attempt; each later pause is four times the one before.
    pub first_pause: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            queue: 1024,
            concurrent: 16,
            attempts: 3,
            first_pause: Duration::from_secs(1),
        }
    }
}

/// The sending end, which the domain's [`BackChannelLogout`](gatehouse_core::logout) sends
/// through. Its delivery task ends once the queue is dropped and what it held is delivered.
pub struct LogoutQueue {
    sender: mpsc::Sender<LogoutDelivery>,
    unfinished: Arc<Unfinished>,
}

/// Tokens queued or in flight, so a short-lived process can wait for them.
#[derive(Default)]
struct Unfinished {
    count: AtomicUsize,
    changed: Notify,
}

impl Unfinished {
    fn done(&self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }
}

impl LogoutQueue {
    /// Starts the delivery task (on the current runtime) and returns its queue.
    pub fn start(fetcher: Fetcher, policy: DeliveryPolicy) -> LogoutQueue {
        let (sender, receiver) = mpsc::channel(policy.queue.max(1));
        let unfinished = Arc::new(Unfinished::default());
        tokio::spawn(deliver_all(fetcher, policy, receiver, unfinished.clone()));
        LogoutQueue { sender, unfinished }
    }

    /// Waits until every token sent so far is delivered or given up, for at most `within`;
    /// whether they all were. For commands, which end right after their change.
    pub async fn finished(&self, within: Duration) -> bool {
        let waiting = async {
            loop {
                let changed = self.unfinished.changed.notified();
                if self.unfinished.count.load(Ordering::SeqCst) == 0 {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(within, waiting).await.is_ok()
    }
}

impl LogoutSender for LogoutQueue {
    fn send(&self, delivery: LogoutDelivery) {
        self.unfinished.count.fetch_add(1, Ordering::SeqCst);
        match self.sender.try_send(delivery) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(delivery)) => {
                self.unfinished.done();
                tracing::warn!(
                    client_id = %delivery.client_id,
                    "back-channel logout dropped: too many deliveries are waiting"
                );
            }
            // Only while the runtime shuts down, when the task has gone before its queue.
            Err(mpsc::error::TrySendError::Closed(delivery)) => {
                self.unfinished.done();
                tracing::warn!(
                    client_id = %delivery.client_id,
                    "back-channel logout dropped: the server is stopping"
                );
            }
        }
    }
}

/// The delivery task: takes tokens off the queue and delivers up to `concurrent` at once, so
/// one unreachable application holds up only its own deliveries.
async fn deliver_all(
    fetcher: Fetcher,
    policy: DeliveryPolicy,
    mut receiver: mpsc::Receiver<LogoutDelivery>,
    unfinished: Arc<Unfinished>,
) {
    let slots = Arc::new(Semaphore::new(policy.concurrent.max(1)));
    let mut in_flight = JoinSet::new();
    while let Some(delivery) = receiver.recv().await {
        while in_flight.try_join_next().is_some() {}
        let slot = (slots.clone().acquire_owned().await).expect("the semaphore is never closed");
        let fetcher = fetcher.clone();
        let unfinished = unfinished.clone();
        in_flight.spawn(async move {
            deliver(&fetcher, &policy, &delivery).await;
            drop(slot);
            unfinished.done();
        });
    }
    while in_flight.join_next().await.is_some() {}
}

/// One token, with its retries. A `4xx` answer is the application refusing this token, which
/// the same token again would not change; anything else that is not a success is tried again.
async fn deliver(fetcher: &Fetcher, policy: &DeliveryPolicy, delivery: &LogoutDelivery) {
    let mut pause = policy.first_pause;
    for attempt in 1..=policy.attempts {
        match post(fetcher, delivery).await {
            Ok(()) => {
                tracing::debug!(client_id = %delivery.client_id, attempt, "back-channel logout delivered");
                return;
            }
            Err(FetchError::Status(status)) if is_refusal(status) => {
                tracing::warn!(
                    client_id = %delivery.client_id,
                    status,
                    "back-channel logout refused by the application"
                );
                return;
            }
            Err(error) if attempt < policy.attempts => {
                tracing::debug!(client_id = %delivery.client_id, attempt, %error, "back-channel logout failed; retrying");
                tokio::time::sleep(pause).await;
                pause *= 4;
            }
            Err(error) => {
                tracing::warn!(
                    client_id = %delivery.client_id,
                    attempts = policy.attempts,
                    %error,
                    "back-channel logout not delivered"
                );
            }
        }
    }
}

/// A client error that is not about timing (RFC 9110: `408` and `429` ask to try later).
fn is_refusal(status: u16) -> bool {
    (400..500).contains(&status) && status != 408 && status != 429
}

async fn post(fetcher: &Fetcher, delivery: &LogoutDelivery) -> Result<(), FetchError> {
    let url = Url::parse(&delivery.uri).map_err(|_| FetchError::Insecure(delivery.uri.clone()))?;
    check_url(&url)?;
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("logout_token", &delivery.logout_token)
        .finish();
    let response = fetcher
        .http()
        .post(url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?;
    // §2.8: 200, or the 204 some frameworks answer instead; the body says nothing we use.
    if response.status().is_success() {
        Ok(())
    } else {
        Err(FetchError::Status(response.status().as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_client_errors_about_the_token_end_the_retries() {
        for status in [400, 401, 403, 404, 410] {
            assert!(is_refusal(status), "{status}");
        }
        for status in [408, 429, 500, 502, 503, 301] {
            assert!(!is_refusal(status), "{status}");
        }
    }
}
