//! `[cluster]`: how this switch joins a cluster. Without the section the switch runs
//! alone, exactly as before, and never touches etcd.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::placement::{EtcdDown, Limits};
use crate::config::ConfigError;

/// `[cluster]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// etcd's client URLs: all `https://` (with `etcd_ca`), or all `http://`.
    pub etcd: Vec<String>,
    /// PEM file of the CA that signs etcd's server certificates: needed with `https://`
    /// URLs (etcd's certificate is always verified).
    #[serde(default)]
    pub etcd_ca: Option<PathBuf>,
    /// PEM file of this node's client certificate (chain) toward etcd, for etcd's
    /// `--client-cert-auth`; with `etcd_key`.
    #[serde(default)]
    pub etcd_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    #[serde(default)]
    pub etcd_key: Option<PathBuf>,
    /// This node's id, unique in the cluster.
    pub node_id: String,
    /// Where other nodes redirect calls for this node's meetings; default
    /// `sip:ADDRESS;transport=tls` from `[sip] tls` when that is a specific address.
    #[serde(default)]
    pub sip_uri: Option<String>,
    /// Key prefix in etcd (several clusters may share one etcd).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// The lease's time to live, seconds: how long a dead node's meetings stay claimed,
    /// and how soon a node cut off from etcd ends its meetings (a fifth sooner).
    #[serde(default = "default_ttl")]
    pub lease_ttl: u64,
    /// New meetings while etcd is unreachable: `refuse` (503) or `local`.
    #[serde(default)]
    pub etcd_down: EtcdDown,
    /// Past this many meetings new ones go to the least-loaded node (0: no limit).
    #[serde(default)]
    pub max_meetings: u32,
    /// Past this CPU share (0.0-1.0) new meetings go elsewhere (0: no limit).
    #[serde(default)]
    pub max_cpu: f32,
}

fn default_prefix() -> String {
    "/mswitch".into()
}

fn default_ttl() -> u64 {
    5
}

/// `[cluster]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    /// etcd's client URLs.
    pub etcd: Vec<String>,
    /// TLS toward etcd (`https://` URLs); `None`: `http://`.
    pub tls: Option<EtcdTls>,
    /// This node's id.
    pub node_id: String,
    /// Its SIP URI for redirects; `None`: `sip:ADDRESS;transport=tls` from the SIP/TLS
    /// listener's bound address (known at start, when the port is 0 in the file).
    pub sip_uri: Option<String>,
    /// Key prefix.
    pub prefix: String,
    /// Lease TTL.
    pub lease_ttl: Duration,
    /// The rule while etcd is unreachable.
    pub etcd_down: EtcdDown,
    /// When to send new meetings elsewhere.
    pub limits: Limits,
}

/// TLS toward etcd, read and checked at start: PEM text, as tonic takes it.
#[derive(Clone, PartialEq)]
pub struct EtcdTls {
    /// The CA certificates that sign etcd's server certificates.
    pub ca_pem: Vec<u8>,
    /// This node's client certificate chain and its private key.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for EtcdTls {
    // Never the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdTls")
            .field("ca_pem_bytes", &self.ca_pem.len())
            .field("client_certificate", &self.identity.is_some())
            .finish()
    }
}

/// A PEM file with at least one certificate; its text.
fn certificates_pem(key: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let bytes = std::fs::read(path).map_err(|e| err(key, format!("{}: {e}", path.display())))?;
    if !CertificateDer::pem_slice_iter(&bytes).any(|c| c.is_ok()) {
        return Err(err(
            key,
            format!("{}: no PEM certificate in it", path.display()),
        ));
    }
    Ok(bytes)
}

/// A PEM file with a private key; its text.
fn private_key_pem(key: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let bytes = std::fs::read(path).map_err(|e| err(key, format!("{}: {e}", path.display())))?;
    if PrivateKeyDer::from_pem_slice(&bytes).is_err() {
        return Err(err(
            key,
            format!("{}: no PEM private key in it", path.display()),
        ));
    }
    Ok(bytes)
}

fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: format!("cluster.{key}"),
        message: message.into(),
    }
}

impl ClusterConfig {
    /// TLS toward etcd: with `https://` URLs its CA is needed (verification is never
    /// off); with `http://` no TLS key may be set (it would be silently unused).
    fn tls(&self, https: bool) -> Result<Option<EtcdTls>, ConfigError> {
        if !https {
            for (key, set) in [
                ("etcd_ca", self.etcd_ca.is_some()),
                ("etcd_cert", self.etcd_cert.is_some()),
                ("etcd_key", self.etcd_key.is_some()),
            ] {
                if set {
                    return Err(err(key, "only with https:// etcd URLs"));
                }
            }
            return Ok(None);
        }
        let Some(ca) = &self.etcd_ca else {
            return Err(err(
                "etcd_ca",
                "needed with https:// etcd URLs: the CA that signs etcd's certificates",
            ));
        };
        let ca_pem = certificates_pem("etcd_ca", ca)?;
        let identity = match (&self.etcd_cert, &self.etcd_key) {
            (Some(cert), Some(key)) => Some((
                certificates_pem("etcd_cert", cert)?,
                private_key_pem("etcd_key", key)?,
            )),
            (None, None) => None,
            (Some(_), None) => return Err(err("etcd_key", "needed with etcd_cert")),
            (None, Some(_)) => return Err(err("etcd_cert", "needed with etcd_key")),
        };
        Ok(Some(EtcdTls { ca_pem, identity }))
    }

    /// Checks every value; `sip_tls` is the switch's SIP/TLS listener.
    pub fn check(&self, sip_tls: Option<SocketAddr>) -> Result<ClusterSettings, ConfigError> {
        if self.etcd.is_empty() {
            return Err(err("etcd", "at least one etcd client URL"));
        }
        let https = self.etcd[0].starts_with("https://");
        for (i, url) in self.etcd.iter().enumerate() {
            let scheme_ok = if https {
                url.starts_with("https://")
            } else {
                url.starts_with("http://")
            };
            if !scheme_ok {
                return Err(err(
                    &format!("etcd[{i}]"),
                    format!(
                        "`{url}`: expected {} like the first URL (all https://, or all http://)",
                        if https { "https://" } else { "http://" }
                    ),
                ));
            }
        }
        let tls = self.tls(https)?;
        let id_ok = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if self.node_id.is_empty() || self.node_id.len() > 64 || !self.node_id.chars().all(id_ok) {
            return Err(err(
                "node_id",
                format!("`{}`: 1-64 of A-Z a-z 0-9 - _ .", self.node_id),
            ));
        }
        let sip_uri = match (&self.sip_uri, sip_tls) {
            (Some(u), _) if u.starts_with("sip:") || u.starts_with("sips:") => {
                if u.contains(['\r', '\n', '<', '>', ' ']) {
                    return Err(err("sip_uri", format!("`{u}`: not a SIP URI")));
                }
                Some(u.clone())
            }
            (Some(u), _) => return Err(err("sip_uri", format!("`{u}`: expected sip: or sips:"))),
            (None, Some(a)) if !a.ip().is_unspecified() => None,
            (None, _) => {
                return Err(err(
                    "sip_uri",
                    "needed: [sip] tls listens on no specific address, and other nodes redirect calls here",
                ));
            }
        };
        if !(1..=300).contains(&self.lease_ttl) {
            return Err(err("lease_ttl", "1-300 seconds"));
        }
        if !self.prefix.starts_with('/') {
            return Err(err("prefix", format!("`{}`: starts with /", self.prefix)));
        }
        if !(0.0..=1.0).contains(&self.max_cpu) {
            return Err(err("max_cpu", "0.0-1.0"));
        }
        Ok(ClusterSettings {
            etcd: self.etcd.clone(),
            tls,
            node_id: self.node_id.clone(),
            sip_uri,
            prefix: self.prefix.clone(),
            lease_ttl: Duration::from_secs(self.lease_ttl),
            etcd_down: self.etcd_down,
            limits: Limits {
                max_meetings: self.max_meetings,
                max_cpu: self.max_cpu,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ClusterSettings, ConfigError> {
        let c: ClusterConfig = toml::from_str(text).map_err(|e| err("", e.to_string()))?;
        c.check(Some("10.0.0.2:5061".parse().unwrap()))
    }

    #[test]
    fn a_cluster_section_is_checked_and_defaults_follow_the_sip_listener() {
        let s = parse("etcd = [\"http://10.0.0.9:2379\"]\nnode_id = \"ms-1\"\n").unwrap();
        assert_eq!(s.sip_uri, None, "from the bound listener at start");
        assert_eq!(
            (s.prefix.as_str(), s.lease_ttl),
            ("/mswitch", Duration::from_secs(5))
        );
        assert_eq!(s.etcd_down, EtcdDown::Refuse);
        let s = parse(
            "etcd = [\"http://e:2379\"]\nnode_id = \"b\"\nsip_uri = \"sips:b.example\"\n\
             etcd_down = \"local\"\nmax_meetings = 40\nlease_ttl = 10\n",
        )
        .unwrap();
        assert_eq!(
            (s.sip_uri.as_deref(), s.etcd_down, s.limits.max_meetings),
            (Some("sips:b.example"), EtcdDown::Local, 40)
        );
        for (bad, key) in [
            ("etcd = []\nnode_id = \"a\"", "cluster.etcd"),
            (
                "etcd = [\"10.0.0.9:2379\"]\nnode_id = \"a\"",
                "cluster.etcd[0]",
            ),
            (
                "etcd = [\"https://e:2379\"]\nnode_id = \"a\"",
                "cluster.etcd_ca",
            ),
            (
                "etcd = [\"https://e:2379\", \"http://f:2379\"]\nnode_id = \"a\"",
                "cluster.etcd[1]",
            ),
            (
                "etcd = [\"http://e:2379\"]\nnode_id = \"a\"\netcd_ca = \"ca.pem\"",
                "cluster.etcd_ca",
            ),
            (
                "etcd = [\"https://e:2379\"]\nnode_id = \"a\"\netcd_ca = \"/nonexistent/ca.pem\"",
                "cluster.etcd_ca",
            ),
            (
                "etcd = [\"http://e\"]\nnode_id = \"a/b\"",
                "cluster.node_id",
            ),
            (
                "etcd = [\"http://e\"]\nnode_id = \"a\"\nsip_uri = \"sip:a\\r\\nX: y\"",
                "cluster.sip_uri",
            ),
            (
                "etcd = [\"http://e\"]\nnode_id = \"a\"\nlease_ttl = 0",
                "cluster.lease_ttl",
            ),
            (
                "etcd = [\"http://e\"]\nnode_id = \"a\"\netcd_down = \"maybe\"",
                "cluster.",
            ),
            (
                "etcd = [\"http://e\"]\nnode_id = \"a\"\nmax_cpu = 2.0",
                "cluster.max_cpu",
            ),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.key.starts_with(key), "{bad}: {e}");
        }
        // A wildcard listener needs the URI said.
        let c: ClusterConfig = toml::from_str("etcd = [\"http://e\"]\nnode_id = \"a\"").unwrap();
        assert_eq!(
            c.check(Some("0.0.0.0:5061".parse().unwrap()))
                .unwrap_err()
                .key,
            "cluster.sip_uri"
        );
    }
}
