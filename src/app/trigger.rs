//! What asked for a reload, so that its log line can say so.
//!
//! Requests that arrive while the reload task waits are served by one
//! reload; [`Triggers`] keeps every kind among them.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

/// One reason to reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The first load, when the node starts.
    Startup,
    /// The process received `SIGHUP`.
    Hangup,
    /// A file changed in `app_path` or `policy_path`.
    FileChange,
    /// An admin API call changed an API definition or policy here.
    AdminCall,
    /// Another node announced a change.
    ClusterEvent,
    /// The change counter in Redis was ahead, or pub/sub reconnected.
    Resync,
    /// `GET /tyk/reload`.
    ReloadCall,
    /// `GET /tyk/reload/group`.
    GroupReloadCall,
}

/// A set of triggers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Triggers(u8);

/// Triggers waiting for the reload task; filled from any thread.
#[derive(Debug, Default)]
pub struct PendingTriggers(AtomicU8);

const ALL: [Trigger; 8] = [
    Trigger::Startup,
    Trigger::Hangup,
    Trigger::FileChange,
    Trigger::AdminCall,
    Trigger::ClusterEvent,
    Trigger::Resync,
    Trigger::ReloadCall,
    Trigger::GroupReloadCall,
];

// === impl Trigger ===

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Startup => "startup",
            Self::Hangup => "SIGHUP",
            Self::FileChange => "file change",
            Self::AdminCall => "admin call",
            Self::ClusterEvent => "cluster event",
            Self::Resync => "resync",
            Self::ReloadCall => "/tyk/reload",
            Self::GroupReloadCall => "/tyk/reload/group",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

// === impl Triggers ===

impl Triggers {
    pub fn contains(self, trigger: Trigger) -> bool {
        self.0 & trigger.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl From<Trigger> for Triggers {
    fn from(trigger: Trigger) -> Self {
        Self(trigger.bit())
    }
}

/// The names joined by `, `, in a fixed order.
impl fmt::Display for Triggers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = ALL
            .iter()
            .filter(|t| self.contains(**t))
            .map(|t| t.as_str())
            .collect();
        f.write_str(&names.join(", "))
    }
}

// === impl PendingTriggers ===

impl PendingTriggers {
    pub fn add(&self, trigger: Trigger) {
        self.0.fetch_or(trigger.bit(), Ordering::AcqRel);
    }

    /// Everything added since the last take.
    pub fn take(&self) -> Triggers {
        Triggers(self.0.swap(0, Ordering::AcqRel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_triggers_are_named_once_each() {
        let pending = PendingTriggers::default();
        pending.add(Trigger::FileChange);
        pending.add(Trigger::Hangup);
        pending.add(Trigger::FileChange);
        let taken = pending.take();
        assert_eq!(taken.to_string(), "SIGHUP, file change");
        assert!(pending.take().is_empty());
    }

    #[test]
    fn every_trigger_has_its_own_bit() {
        let bits: Vec<u8> = ALL.iter().map(|t| t.bit()).collect();
        let combined = bits.iter().fold(0u8, |acc, b| acc | b);
        assert_eq!(combined.count_ones() as usize, ALL.len());
    }
}
