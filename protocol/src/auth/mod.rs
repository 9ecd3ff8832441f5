//! Membership by key: only holders of the group key can call. A node with a key (`dhost
//! keygen`, `--key-file`) seals every datagram it sends and checks every one it receives
//! before decoding it ([`Gate`]), remembers each sender's recent packet numbers so that no
//! datagram is accepted twice ([`replay`]), and says why it refused one
//! ([`Rejected`]); connections to a node's TCP port prove both ends hold it
//! ([`connection`]). docs/security.md says what this protects and what it does not.

pub mod connection;
pub mod datagram;
pub mod key;
pub mod replay;

pub use datagram::{Arrival, Gate, Rejected, Sealed, Unopened};
pub use key::{GroupKey, KeyError, Keyring};
pub use replay::ReplayGuard;
