//! The cluster registry in etcd: this node's record under its lease, and meeting
//! ownership by transaction. Keys, under the configured prefix:
//!
//! - `{prefix}/nodes/{id}`: the node's [`NodeRecord`] (JSON), attached to its lease: when
//!   the node stops renewing it, the record goes, and with it every meeting it owns.
//! - `{prefix}/meetings/{number}`: the owner's id, attached to the owner's lease. Its
//!   revision when created is the meeting's fencing token: a node changes a meeting's
//!   group parameters only while the key still has that revision ([`Registry::holds`]).

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, PutOptions,
    TlsOptions, Txn, TxnOp, TxnOpResponse,
};

use super::config::EtcdTls;
use super::placement::{NodeRecord, Owner};

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// etcd could not be reached, or refused the call.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// A record that is not what this version writes.
    #[error("registry record {key}: {reason}")]
    Record {
        /// Its key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The lease lapsed: this node is no longer in the cluster and owns nothing.
    #[error("the node's lease lapsed")]
    LeaseLost,
}

/// The outcome of claiming a meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This node owns it now, under this fencing token.
    Won {
        /// The key's revision.
        token: i64,
    },
    /// Another node (or this one, earlier) owns it.
    Held {
        /// The owner.
        node: String,
        /// Its token.
        token: i64,
    },
}

/// A node's place in the registry. A clone shares the connection and the lease: it
/// lets a slow write go on beside the renewals.
#[derive(Clone)]
pub struct Registry {
    client: Client,
    prefix: String,
    node: String,
    lease: i64,
    ttl: Duration,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("prefix", &self.prefix)
            .field("node", &self.node)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Connects to etcd at `endpoints` (over TLS with `tls`; each call times out after
    /// `timeout`), takes a lease of `ttl` and writes `record` under it.
    pub async fn join(
        endpoints: &[String],
        tls: Option<&EtcdTls>,
        prefix: &str,
        record: &NodeRecord,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<Self, RegistryError> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_timeout(timeout);
        if let Some(tls) = tls {
            // etcd's certificate is verified against this CA only, and its name against
            // the URL's host (tonic's rustls, with ring as the rest of the switch).
            let mut config = TlsOptions::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            options = options.with_tls(config);
        }
        let mut client = Client::connect(endpoints, Some(options)).await?;
        let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let lease = client.lease_grant(secs, None).await?.id();
        let mut me = Self {
            client,
            prefix: prefix.trim_end_matches('/').to_owned(),
            node: record.id.clone(),
            lease,
            ttl,
        };
        me.publish(record).await?;
        Ok(me)
    }

    /// The lease's time to live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn node_key(&self, id: &str) -> String {
        format!("{}/nodes/{id}", self.prefix)
    }

    fn meeting_key(&self, number: &str) -> String {
        format!("{}/meetings/{number}", self.prefix)
    }

    /// Writes this node's record (its load changed), under its lease.
    pub async fn publish(&mut self, record: &NodeRecord) -> Result<(), RegistryError> {
        let value = serde_json::to_vec(record).map_err(|e| RegistryError::Record {
            key: self.node_key(&record.id),
            reason: e.to_string(),
        })?;
        let key = self.node_key(&self.node);
        self.client
            .put(key, value, Some(PutOptions::new().with_lease(self.lease)))
            .await?;
        Ok(())
    }

    /// Renews the lease once; [`RegistryError::LeaseLost`] when etcd says it is gone.
    pub async fn renew(&mut self) -> Result<Duration, RegistryError> {
        let round = async {
            let (mut keeper, mut stream) = self.client.lease_keep_alive(self.lease).await?;
            keeper.keep_alive().await?;
            stream.message().await
        };
        match round.await {
            Ok(Some(r)) if r.ttl() > 0 => Ok(Duration::from_secs(r.ttl() as u64)),
            // etcd answers a lapsed lease with TTL 0, which this client reports as "lease
            // not found" (its other keep-alive errors are the stream's, not the lease's).
            Ok(_) => Err(RegistryError::LeaseLost),
            Err(etcd_client::Error::LeaseKeepAliveError(m)) if m == "lease not found" => {
                Err(RegistryError::LeaseLost)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Claims `number` for this node if no one owns it (one transaction: create the key
    /// only if absent, under this node's lease), else says who does.
    pub async fn claim(&mut self, number: &str) -> Result<Claim, RegistryError> {
        let key = self.meeting_key(number);
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                self.node.clone(),
                Some(PutOptions::new().with_lease(self.lease)),
            )])
            .or_else([TxnOp::get(key.clone(), None)]);
        let r = self.client.txn(txn).await?;
        if r.succeeded() {
            let token = r.header().map(|h| h.revision()).unwrap_or(0);
            return Ok(Claim::Won { token });
        }
        for op in r.op_responses() {
            if let TxnOpResponse::Get(g) = op
                && let Some(kv) = g.kvs().first()
            {
                let node = kv.value_str().map_err(|e| RegistryError::Record {
                    key: key.clone(),
                    reason: e.to_string(),
                })?;
                return Ok(Claim::Held {
                    node: node.to_owned(),
                    token: kv.create_revision(),
                });
            }
        }
        // Deleted between the compare and the get (its owner's lease lapsed): no owner.
        Err(RegistryError::Record {
            key,
            reason: "vanished while claimed".into(),
        })
    }

    /// Who owns `number`.
    pub async fn owner(&mut self, number: &str) -> Result<Owner, RegistryError> {
        let key = self.meeting_key(number);
        let r = self.client.get(key.clone(), None).await?;
        let Some(kv) = r.kvs().first() else {
            return Ok(Owner::Nobody);
        };
        let node = kv.value_str().map_err(|e| RegistryError::Record {
            key,
            reason: e.to_string(),
        })?;
        let token = kv.create_revision();
        Ok(if node == self.node {
            Owner::Here { token }
        } else {
            Owner::Elsewhere {
                node: node.to_owned(),
                token,
            }
        })
    }

    /// Whether this node still owns `number` under `token` (the fencing check before a
    /// change of the meeting's group parameters): false once its lease lapsed and another
    /// node claimed it, even if this node has not noticed yet.
    pub async fn holds(&mut self, number: &str, token: i64) -> Result<bool, RegistryError> {
        Ok(self.owner(number).await? == Owner::Here { token })
    }

    /// Gives `number` up (its meeting ended), only if this node still holds it under
    /// `token`; returns whether it did.
    pub async fn release(&mut self, number: &str, token: i64) -> Result<bool, RegistryError> {
        let key = self.meeting_key(number);
        let txn = Txn::new()
            .when([Compare::create_revision(
                key.clone(),
                CompareOp::Equal,
                token,
            )])
            .and_then([TxnOp::delete(key, None)]);
        Ok(self.client.txn(txn).await?.succeeded())
    }

    /// This node's claims: meeting number -> fencing token.
    pub async fn claims(&mut self) -> Result<BTreeMap<String, i64>, RegistryError> {
        let prefix = format!("{}/meetings/", self.prefix);
        let r = self
            .client
            .get(prefix.clone(), Some(GetOptions::new().with_prefix()))
            .await?;
        Ok(r.kvs()
            .iter()
            .filter(|kv| kv.value() == self.node.as_bytes())
            .filter_map(|kv| {
                let number = kv.key_str().ok()?.strip_prefix(&prefix)?;
                Some((number.to_owned(), kv.create_revision()))
            })
            .collect())
    }

    /// Every live node's record (records that do not parse are skipped: a newer version's).
    pub async fn nodes(&mut self) -> Result<Vec<NodeRecord>, RegistryError> {
        let prefix = format!("{}/nodes/", self.prefix);
        let r = self
            .client
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await?;
        Ok(r.kvs()
            .iter()
            .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
            .collect())
    }

    /// Leaves the cluster at once: the lease is revoked, and with it this node's record
    /// and every meeting it owns.
    pub async fn leave(mut self) -> Result<(), RegistryError> {
        self.client.lease_revoke(self.lease).await?;
        Ok(())
    }
}
