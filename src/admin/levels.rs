//! The management security level (seeds 000/001: Level 1 password only, 2 protected
//! passwords, 3 encrypted, 4 encrypted with certificates verified; seeds-mgmt.md R2-R4):
//! each enabled service's level and the effective one, the lowest (R4: "the actual level
//! of security ... will vary based on the services/protocol used"). Pure.

use serde::Serialize;

/// What is enabled.
#[derive(Debug, Clone, Default)]
pub struct Services {
    /// The admin HTTPS listener.
    pub admin_https: bool,
    /// The metrics listener, and whether it is on loopback only.
    pub metrics: Option<bool>,
    /// SIP over TLS (mutually authenticated, the peer's certificate verified).
    pub sip_tls: bool,
    /// SIP over UDP or TCP.
    pub sip_clear: bool,
    /// Each webhook: whether it verifies the receiver's certificate.
    pub webhooks: Vec<bool>,
}

/// One service's level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceLevel {
    /// The service.
    pub service: &'static str,
    /// 1-4.
    pub level: u8,
    /// Why.
    pub why: &'static str,
}

/// The effective level and each service's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LevelView {
    /// The lowest level of an enabled service (4 when nothing is enabled).
    pub effective: u8,
    /// Per service.
    pub services: Vec<ServiceLevel>,
}

/// The levels of `s`.
pub fn levels(s: &Services) -> LevelView {
    let mut services = Vec::new();
    if s.admin_https {
        services.push(ServiceLevel {
            service: "admin HTTPS",
            level: 4,
            why: "TLS 1.2+ only, credentials only inside it; the browser verifies the certificate (upload a CA-issued one)",
        });
    }
    if s.sip_tls {
        services.push(ServiceLevel {
            service: "SIP over TLS",
            level: 4,
            why: "mutual TLS: the trunk peer's certificate is verified and must name its subject",
        });
    }
    if s.sip_clear {
        services.push(ServiceLevel {
            service: "SIP over UDP/TCP",
            level: 1,
            why: "signalling in clear (only the non-secure Device Security modes take calls on it)",
        });
    }
    if s.metrics == Some(false) {
        services.push(ServiceLevel {
            service: "metrics (plain HTTP)",
            level: 1,
            why: "counters readable in clear by anyone who reaches it; bind it to loopback",
        });
    }
    for verify in &s.webhooks {
        services.push(if *verify {
            ServiceLevel {
                service: "webhook (HTTPS client)",
                level: 4,
                why: "the receiver's certificate is verified",
            }
        } else {
            ServiceLevel {
                service: "webhook (HTTPS client)",
                level: 3,
                why: "encrypted, but verify = false: the receiver is not authenticated",
            }
        });
    }
    LevelView {
        effective: services.iter().map(|l| l.level).min().unwrap_or(4),
        services,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_effective_level_is_the_lowest_enabled_service() {
        let mut s = Services {
            admin_https: true,
            metrics: Some(true),
            sip_tls: true,
            ..Services::default()
        };
        let l = levels(&s);
        assert_eq!(l.effective, 4);
        assert_eq!(
            l.services.len(),
            2,
            "metrics on loopback is not a network service"
        );
        s.webhooks = vec![true, false];
        assert_eq!(levels(&s).effective, 3);
        s.metrics = Some(false);
        assert_eq!(levels(&s).effective, 1);
        s.metrics = None;
        s.webhooks.clear();
        s.sip_clear = true;
        assert_eq!(levels(&s).effective, 1);
        assert_eq!(levels(&Services::default()).effective, 4);
    }
}
