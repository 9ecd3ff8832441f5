//! dhost-protocol: what the nodes of a dhost group say to each other, and the state
//! machines that decide what to say, with no I/O: no sockets, no threads, no runtime and
//! no WebAssembly. Time comes in as an argument where a decision depends on it, so that
//! every rule can be tested with a made-up clock. The node (`dhost`) drives these from its
//! threads and sockets; the fuzz targets and the protocol's unit tests build against this
//! crate alone.
//!
//! - [`wire`]: datagrams and their frames in CBOR, and batching;
//! - [`cbor`]: a cursor over CBOR bytes that checks without building values;
//! - [`clock`]: how far the group's clocks may differ, and now by the wall clock;
//! - [`frame_kind`]: the kind numbers of every frame, datagrams' and the TCP port's;
//! - [`auth`]: group keys, sealing and checking datagrams, replay windows, the keyed
//!   handshake of TCP connections;
//! - [`stream`]: reliable multicast: each sender's stream, repaired and paced;
//! - [`membership`]: announcements, the peers table, unique names;
//! - [`rpc`]: the frames of calls to one node over TCP, and the budgets of what callers
//!   queue;
//! - [`outcome`]: the outcome of a call with a reply, and the kinds of failure;
//! - [`modules`]: published modules: digests, publications, the catalog;
//! - [`printable`]: text from the network or a guest made safe to print;
//! - [`user_files`]: who may own and write the files dhost trusts (key files among them).

pub mod auth;
pub mod cbor;
pub mod clock;
pub mod frame_kind;
pub mod membership;
pub mod modules;
pub mod outcome;
pub mod printable;
pub mod rpc;
pub mod stream;
pub mod user_files;
pub mod wire;
