//! Several switches as one (issue 21): each node registers itself in etcd under a lease,
//! a meeting is owned by exactly one node (claimed with a compare-and-swap transaction
//! whose revision is the meeting's fencing token), and a call for a meeting owned
//! elsewhere is redirected to its owner.
//!
//! - [`lease`]: when a node that cannot renew its lease must end its meetings (pure).
//! - [`placement`]: the decisions, pure and tested without etcd or sockets (as
//!   `policy.rs`): where a call for a meeting goes, which node takes a new meeting.
//! - [`reconcile`]: the registry brought back to what a node runs (pure).
//! - [`node`]: the task that owns the registry: renews, routes, reconciles, gives up.
//! - [`registry`]: the effects: etcd's v3 API through the `etcd-client` crate (tonic
//!   gRPC; leases, transactions), keys under a configured prefix.
//!
//! A claim's token is checked against etcd when the claim is won; from then on it holds
//! exactly as long as the node's lease, and the node enforces the lease's deadline
//! itself, before etcd could hand the meeting to another node: call control checks it
//! before it acts on any input (a SIP message, the admin API), and each media worker
//! before it reads a socket (`switch::udp::LeaseFence`), so a node paused past its lease
//! serves, forwards and reports nothing of its old meetings when it resumes.
//!
//! Why etcd and not Redis (anchors-ops.md): etcd's writes are linearizable and a
//! transaction's compare-and-swap on a key's revision gives a fencing token; Redis
//! replicates asynchronously and can lose an acknowledged lock, which for us would be two
//! owners of one meeting and two group keys that cannot decrypt each other.

pub mod config;
pub mod lease;
pub mod node;
pub mod placement;
pub mod reconcile;
pub mod registry;
