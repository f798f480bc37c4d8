//! Redis pub/sub transport for cluster events. The messages themselves are
//! opaque bytes here; `cluster` encodes, signs and applies them.

use fred::prelude::*;
use fred::types::Value;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::connection::builder;
use super::observer::Operation;
use super::{StorageError, Store};

/// Messages a subscriber waits for beyond this are dropped; the periodic
/// resync of the cluster module catches up on what they said.
const SUBSCRIPTION_BUFFER: usize = 4096;

/// What the subscription delivers.
#[derive(Debug)]
pub enum PubSubEvent {
    Message(Vec<u8>),
    /// The subscriber connection came back; messages may have been lost.
    Reconnected,
}

// === impl Store ===

impl Store {
    /// Appends values to a list in one command. Its round trips are
    /// labelled `push_analytics`, the one list tollgate pushes to.
    pub async fn push_all(&self, key: &str, values: Vec<Vec<u8>>) -> Result<(), StorageError> {
        if values.is_empty() {
            return Ok(());
        }
        let values: Vec<Value> = values.into_iter().map(|v| Value::Bytes(v.into())).collect();
        let rpush = self.client().rpush::<(), _, _>(key, values);
        self.timed(Operation::PushAnalytics, rpush).await
    }

    /// The channel name, under the key prefix.
    pub fn channel(&self, name: &str) -> String {
        format!("{}{name}", self.config.key_prefix)
    }

    /// Increments the cluster change counter; returns the new value.
    pub async fn bump_change_counter(&self) -> Result<u64, StorageError> {
        let incr = self.client().incr(self.keys.change_counter());
        self.timed(Operation::BumpChangeCounter, incr).await
    }

    /// The cluster change counter (0 before the first change).
    pub async fn change_counter(&self) -> Result<u64, StorageError> {
        let get = self.client().get(self.keys.change_counter());
        let value: Option<u64> = self.timed(Operation::ChangeCounter, get).await?;
        Ok(value.unwrap_or(0))
    }

    pub async fn publish(&self, channel: &str, message: Vec<u8>) -> Result<(), StorageError> {
        let bytes = Value::Bytes(message.into());
        let publish = self.client().publish::<(), _, _>(channel, bytes);
        self.timed(Operation::Publish, publish).await
    }

    /// Subscribes on a connection of its own, kept and resubscribed by fred
    /// across reconnects.
    pub async fn subscribe(
        &self,
        channel: &str,
    ) -> Result<mpsc::Receiver<PubSubEvent>, StorageError> {
        let subscriber = builder(&self.config)?.build_subscriber_client()?;
        subscriber.init().await?;
        drop(subscriber.manage_subscriptions());
        subscriber.subscribe(channel).await?;

        let (events, receiver) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let mut messages = subscriber.message_rx();
        let mut reconnects = subscriber.reconnect_rx();
        tokio::spawn(async move {
            // Keeps the subscriber alive as long as this task runs.
            let _subscriber = subscriber;
            loop {
                let event = tokio::select! {
                    message = messages.recv() => match message {
                        Ok(message) => message_bytes(message.value),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            warn!(missed = n, "cluster subscriber lagged");
                            Some(PubSubEvent::Reconnected)
                        }
                        Err(_) => break,
                    },
                    server = reconnects.recv() => match server {
                        Ok(_) => {
                            info!("cluster subscriber reconnected");
                            Some(PubSubEvent::Reconnected)
                        }
                        Err(_) => break,
                    },
                };
                let Some(event) = event else { continue };
                if events.try_send(event).is_err() && events.is_closed() {
                    break;
                }
            }
        });
        Ok(receiver)
    }
}

fn message_bytes(value: Value) -> Option<PubSubEvent> {
    value
        .as_bytes()
        .map(|bytes| PubSubEvent::Message(bytes.to_vec()))
}
