//! The signed MessagePack envelope around a cluster event.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::Event;

/// Envelope format; a node drops messages of another version.
const VERSION: u8 = 1;

/// `version`, `origin` node, the change `counter` and the encoded event,
/// with an HMAC-SHA256 of all four under `node_secret`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u8,
    pub origin: String,
    pub counter: u64,
    pub event: Vec<u8>,
    pub signature: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("message is not a cluster envelope")]
    Malformed,
    #[error("unsupported envelope version {0}")]
    Version(u8),
    #[error("bad signature")]
    Signature,
}

// === impl Envelope ===

impl Envelope {
    pub fn seal(
        origin: &str,
        counter: u64,
        event: &Event,
        key: &[u8],
    ) -> Result<Self, EnvelopeError> {
        let event = rmp_serde::to_vec_named(event).map_err(|_| EnvelopeError::Malformed)?;
        let signature = mac(key, VERSION, origin, counter, &event)
            .finalize()
            .into_bytes()
            .to_vec();
        Ok(Self {
            version: VERSION,
            origin: origin.to_string(),
            counter,
            event,
            signature,
        })
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, EnvelopeError> {
        rmp_serde::to_vec_named(self).map_err(|_| EnvelopeError::Malformed)
    }

    /// Decodes and checks a message; returns its origin, counter and event.
    pub fn open(bytes: &[u8], key: &[u8]) -> Result<(String, u64, Event), EnvelopeError> {
        let envelope: Envelope =
            rmp_serde::from_slice(bytes).map_err(|_| EnvelopeError::Malformed)?;
        if envelope.version != VERSION {
            return Err(EnvelopeError::Version(envelope.version));
        }
        let counter = envelope.counter;
        mac(
            key,
            envelope.version,
            &envelope.origin,
            counter,
            &envelope.event,
        )
        .verify_slice(&envelope.signature)
        .map_err(|_| EnvelopeError::Signature)?;
        let event = rmp_serde::from_slice(&envelope.event).map_err(|_| EnvelopeError::Malformed)?;
        Ok((envelope.origin, counter, event))
    }
}

/// The MAC input is length-prefixed so that no two envelopes share it.
fn mac(key: &[u8], version: u8, origin: &str, counter: u64, event: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(&[version]);
    mac.update(&(origin.len() as u64).to_be_bytes());
    mac.update(origin.as_bytes());
    mac.update(&counter.to_be_bytes());
    mac.update(event);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event::TokensRevoked {
            hashes: vec!["abc".into()],
        }
    }

    #[test]
    fn sealed_envelope_opens_with_the_same_key() {
        let bytes = Envelope::seal("node-a", 7, &event(), b"k")
            .unwrap()
            .to_bytes()
            .unwrap();
        let (origin, counter, opened) = Envelope::open(&bytes, b"k").unwrap();
        assert_eq!(origin, "node-a");
        assert_eq!(counter, 7);
        assert_eq!(opened, event());
    }

    /// One event of every kind.
    fn every_kind() -> Vec<Event> {
        let hashes = vec!["h1".to_string(), "h2".to_string()];
        vec![
            Event::ApisChanged,
            Event::ApiRemoved {
                api_id: "orders".into(),
            },
            Event::PoliciesChanged,
            Event::ClientChanged {
                api_id: "a".into(),
                client_id: "c".into(),
            },
            Event::ClientRevoked {
                api_id: "orders".into(),
                client_id: "c1".into(),
            },
            Event::TokensRevoked {
                hashes: hashes.clone(),
            },
            Event::GrantRevoked {
                grant_id: "g1".into(),
                hashes,
            },
            Event::Reload,
        ]
    }

    #[test]
    fn every_event_kind_round_trips_through_the_envelope() {
        for (counter, sent) in (1..).zip(every_kind()) {
            let bytes = Envelope::seal("node-a", counter, &sent, b"k")
                .unwrap()
                .to_bytes()
                .unwrap();
            let (origin, got_counter, opened) = Envelope::open(&bytes, b"k").unwrap();
            assert_eq!((origin.as_str(), got_counter), ("node-a", counter));
            assert_eq!(opened, sent);
        }
    }

    #[test]
    fn another_key_is_a_bad_signature() {
        let bytes = Envelope::seal("node-a", 7, &event(), b"k")
            .unwrap()
            .to_bytes()
            .unwrap();
        assert!(matches!(
            Envelope::open(&bytes, b"x"),
            Err(EnvelopeError::Signature)
        ));
    }

    #[test]
    fn tampered_event_is_a_bad_signature() {
        let mut envelope = Envelope::seal("node-a", 7, &event(), b"k").unwrap();
        envelope.event = rmp_serde::to_vec_named(&Event::Reload).unwrap();
        let bytes = envelope.to_bytes().unwrap();
        assert!(matches!(
            Envelope::open(&bytes, b"k"),
            Err(EnvelopeError::Signature)
        ));
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(
            Envelope::open(b"\x01\x02", b"k"),
            Err(EnvelopeError::Malformed)
        ));
    }
}
