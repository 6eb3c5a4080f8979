//! The driver's side of the certificate store (issue 18): the units as the API shows
//! them, and a change checked, written and applied to new connections at once (SIP trunk
//! in and out, the admin listener) while running calls and their connections go on.
//! DTLS-SRTP is keyed with a certificate made at each start and authenticated by its
//! fingerprint in the SDP (RFC 5763 §5), so the store does not touch it.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, UnixTime};
use tracing::{info, warn};

use super::App;
use crate::admin::certificates::{CertChange, CertChangeError, CertView, UnitView};
use crate::certs::checks::{check_identity, check_trust};
use crate::certs::inspect::inspect;
use crate::certs::store::{UNITS, Unit};
use crate::certs::{CertError, Origin, TlsSources};

/// The admin listener's identity: the store's admin-identity, else the `[admin]`
/// certificate, else the SIP identity.
pub(super) fn admin_identity(
    sources: &TlsSources,
    configured: Option<&(String, String)>,
) -> Result<Arc<rustls::sign::CertifiedKey>, CertError> {
    if let Some(id) = sources.identity(Unit::AdminIdentity)? {
        return Ok(id);
    }
    if let Some((cert, key)) = configured {
        let chain = sip::tls::load_certificates(std::path::Path::new(cert))?;
        let key = sip::tls::load_private_key(std::path::Path::new(key))?;
        return Ok(sip::tls::identity(chain, key)?);
    }
    sources
        .identity(Unit::SipIdentity)?
        .ok_or_else(|| CertError::Generate("no SIP identity".into()))
}

/// Every certificate in use, by unit name, as (unit, DER, source): what the status
/// page's table, the API and `mswitch_certificate_expiry_seconds` show.
pub(super) fn in_use(
    sources: &TlsSources,
    admin_configured: Option<&(String, String)>,
) -> Vec<(Unit, CertificateDer<'static>, &'static str)> {
    let identity_source = |unit: Unit| {
        if sources.uploaded(unit) {
            "uploaded"
        } else {
            match sources.origin {
                Origin::Configured => "configuration",
                Origin::Generated(_) | Origin::Reused(_) => "generated",
            }
        }
    };
    let mut out = Vec::new();
    if let Ok(Some(id)) = sources.identity(Unit::SipIdentity) {
        let source = identity_source(Unit::SipIdentity);
        out.extend(
            id.cert
                .iter()
                .map(|c| (Unit::SipIdentity, c.clone(), source)),
        );
    }
    if (sources.uploaded(Unit::AdminIdentity) || admin_configured.is_some())
        && let Ok(id) = admin_identity(sources, admin_configured)
    {
        let source = if sources.uploaded(Unit::AdminIdentity) {
            "uploaded"
        } else {
            "configuration"
        };
        out.extend(
            id.cert
                .iter()
                .map(|c| (Unit::AdminIdentity, c.clone(), source)),
        );
    }
    let config_source = match sources.origin {
        Origin::Configured => "configuration",
        Origin::Generated(_) | Origin::Reused(_) => "generated",
    };
    for p in &sources.trust_paths {
        if let Ok(certs) = sip::tls::load_certificates(p) {
            out.extend(
                certs
                    .into_iter()
                    .map(|c| (Unit::TrunkTrust, c, config_source)),
            );
        }
    }
    for unit in [Unit::TrunkTrust, Unit::OtherTrust] {
        out.extend(
            sources
                .store
                .trust(unit)
                .into_iter()
                .map(|c| (unit, c, "uploaded")),
        );
    }
    out
}

/// How often every certificate in use is checked for expiry (also at start and after
/// each change).
pub(super) const EXPIRY_CHECK_INTERVAL: std::time::Duration =
    std::time::Duration::from_secs(24 * 3600);

fn unix_now() -> i64 {
    i64::try_from(UnixTime::now().as_secs()).unwrap_or(i64::MAX)
}

impl App {
    /// The units as the API shows them.
    pub(super) fn certificate_units(&self) -> Vec<UnitView> {
        let now = unix_now();
        let all = in_use(&self.tls, self.settings.admin.identity.as_ref());
        UNITS
            .into_iter()
            .map(|unit| UnitView {
                unit,
                used_for: unit.used_for(),
                certificates: all
                    .iter()
                    .filter(|(u, ..)| *u == unit)
                    .filter_map(|(_, der, source)| {
                        let details = inspect(der).ok()?;
                        Some(CertView {
                            days_left: (details.validity_unix.1 - now).div_euclid(86_400),
                            details,
                            source,
                        })
                    })
                    .collect(),
                crls: if unit.is_identity() {
                    Vec::new()
                } else {
                    self.tls
                        .store
                        .crls(unit)
                        .iter()
                        .filter_map(|c| crate::certs::inspect::inspect_crl(c).ok())
                        .collect()
                },
            })
            .collect()
    }

    /// Checks, writes and applies `change`; on any failure the old material stays.
    pub(super) fn change_certificates(
        &mut self,
        change: CertChange,
    ) -> Result<Vec<UnitView>, CertChangeError> {
        let what = change.to_string();
        let failed = |e: &dyn std::fmt::Display| CertChangeError::Failed(e.to_string());
        match change {
            CertChange::Identity { unit, chain, key } => {
                let mut anchors = self.tls.trunk_anchors().map_err(|e| failed(&e))?;
                anchors.extend(self.tls.store.trust(Unit::OtherTrust));
                let checked = check_identity(
                    chain.clone(),
                    key.clone_key(),
                    unit.usage(),
                    &anchors,
                    UnixTime::now(),
                )
                .inspect_err(|e| warn!(unit = unit.name(), "certificate upload refused: {e}"))?;
                self.tls
                    .store
                    .install_identity(unit, &chain, &key)
                    .map_err(|e| failed(&e))?;
                // The CA's answer to our request: the request is done.
                if self
                    .tls
                    .store
                    .pending_key(unit)
                    .is_some_and(|k| k.secret_der() == key.secret_der())
                {
                    self.tls.store.clear_request(unit);
                }
                info!(
                    unit = unit.name(),
                    subject = %checked.details.subject,
                    sha256 = %checked.details.sha256,
                    "certificate installed: new connections use it now, running calls go on"
                );
            }
            CertChange::Trust { unit, certs } => {
                let details = check_trust(&certs, UnixTime::now()).inspect_err(|e| {
                    warn!(unit = unit.name(), "certificate upload refused: {e}")
                })?;
                self.tls
                    .store
                    .add_trust(unit, &certs)
                    .map_err(|e| failed(&e))?;
                for d in details {
                    info!(unit = unit.name(), subject = %d.subject, sha256 = %d.sha256, "trust anchor added");
                }
            }
            CertChange::Crls { unit, crls } => {
                for c in &crls {
                    let d = crate::certs::inspect::inspect_crl(c).map_err(|e| {
                        CertChangeError::Refused(crate::certs::checks::Refused::NotACertificate(
                            e.to_string(),
                        ))
                    })?;
                    webpki::OwnedCertRevocationList::from_der(c).map_err(|e| {
                        CertChangeError::Refused(crate::certs::checks::Refused::NotACertificate(
                            format!("the CRL does not parse for webpki: {e:?}"),
                        ))
                    })?;
                    info!(unit = unit.name(), issuer = %d.issuer, revoked = d.revoked, sha256 = %d.sha256, "revocation list added: certificates it lists are refused from now on");
                }
                self.tls
                    .store
                    .add_crls(unit, &crls)
                    .map_err(|e| failed(&e))?;
            }
            CertChange::Remove { unit, sha256 } => {
                if unit.is_identity() {
                    return Err(CertChangeError::InUse(unit.name()));
                }
                if !self
                    .tls
                    .store
                    .remove_trust(unit, &sha256)
                    .map_err(|e| failed(&e))?
                {
                    return Err(CertChangeError::NotFound(unit.name(), sha256));
                }
                info!(unit = unit.name(), %sha256, "trust anchor removed");
            }
        }
        self.apply_tls().map_err(|e| failed(&e))?;
        self.event(
            "certificates_changed",
            serde_json::json!({ "change": what }),
        );
        self.check_expiry();
        Ok(self.certificate_units())
    }

    /// Warns of every certificate in use that crossed an expiry threshold since the last
    /// check: a log line, an event to the webhooks (the metric and the page say it all the
    /// time).
    pub(super) fn check_expiry(&mut self) {
        let certs: Vec<(&'static str, crate::certs::inspect::CertDetails)> =
            in_use(&self.tls, self.settings.admin.identity.as_ref())
                .into_iter()
                .filter_map(|(unit, der, _)| Some((unit.name(), inspect(&der).ok()?)))
                .collect();
        for w in self.expiry.check(&certs, unix_now()) {
            if w.expired() {
                warn!(unit = w.unit, subject = %w.subject, not_after = %w.not_after, sha256 = %w.sha256, "certificate EXPIRED: replace it (peers refuse it)");
            } else {
                warn!(unit = w.unit, subject = %w.subject, not_after = %w.not_after, sha256 = %w.sha256, "certificate expires in {} days: replace it before then", w.days_left);
            }
            self.event(
                "certificate_expiring",
                serde_json::json!({ "unit": w.unit, "subject": w.subject, "sha256": w.sha256, "not_after": w.not_after, "days_left": w.days_left }),
            );
        }
    }

    /// SIGHUP: the configuration file's certificate paths again; on any error the old
    /// material stays in use.
    pub(super) fn reload_certificates(&mut self, settings: crate::config::Settings) {
        let loopback = self.settings.tls.is_some_and(|a| a.ip().is_loopback());
        let sources = match TlsSources::load(&settings.tls_files, loopback) {
            Ok(s) => s,
            Err(e) => {
                warn!("SIGHUP: the configured certificates do not load, nothing changes: {e}");
                return;
            }
        };
        let old = (
            std::mem::replace(&mut self.tls, sources),
            std::mem::replace(&mut self.settings.admin.identity, settings.admin.identity),
            std::mem::replace(&mut self.settings.tls_files, settings.tls_files),
        );
        match self.apply_tls() {
            Ok(()) => {
                info!(
                    "SIGHUP: certificates reloaded from the configuration; new connections use them, running calls go on"
                );
                self.check_expiry();
            }
            Err(e) => {
                warn!("SIGHUP: the configured certificates do not apply, nothing changes: {e}");
                (
                    self.tls,
                    self.settings.admin.identity,
                    self.settings.tls_files,
                ) = old;
                let _ = self.apply_tls();
            }
        }
    }

    /// Builds the policies from the sources and hands them to the trunk and the admin
    /// listener: new handshakes use them at once.
    pub(super) fn apply_tls(&mut self) -> Result<(), CertError> {
        let policy = self.tls.policy()?;
        self.trunk
            .set_tls(&policy)
            .map_err(|e| CertError::Generate(e.to_string()))?;
        if let Some(server) = &self.admin.server {
            let identity = admin_identity(&self.tls, self.settings.admin.identity.as_ref())?;
            server.reload(sip::tls::https_server_config(identity)?);
        }
        self.ops
            .notifier
            .set_default_trust(&super::ops::webhook_anchors(&self.tls));
        self.admin.certificates = in_use(&self.tls, self.settings.admin.identity.as_ref())
            .into_iter()
            .map(|(unit, der, _)| (unit.name().to_owned(), der.to_vec()))
            .collect();
        Ok(())
    }
}
