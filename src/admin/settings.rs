//! `[admin]`: where the HTTPS admin API and status page listen, their certificate, and the
//! sign-in rules (issue 16; seeds-mgmt.md: management over HTTPS only, R62).

use std::net::SocketAddr;

use serde::Deserialize;

use super::accounts::PasswordPolicy;
use super::sessions::SessionPolicy;

/// `[admin]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// The HTTPS listener; "" disables the admin API and page.
    pub https: String,
    /// Plain HTTP that only redirects to `https` (R62); "" disables it.
    pub http_redirect: String,
    /// Plain HTTP for scrapers and supervisors: `/metrics`, `/healthz`, `/readyz` only;
    /// "" disables it. Beyond loopback only as the operator's explicit choice.
    pub metrics: String,
    /// Seconds a drain (the first SIGTERM, or `POST /api/v1/drain`) lets meetings run
    /// before every call gets BYE.
    pub drain_deadline: u64,
    /// The web identity's certificate (PEM or DER; the seed's "tomcat" unit); "" = the
    /// switch's own identity.
    pub certificate: String,
    /// Its key.
    pub key: String,
    /// Minutes a session may stay unused.
    pub session_idle_minutes: u64,
    /// Failed logins in a row that lock an account.
    pub max_failed_logins: u32,
    /// Seconds a locked account stays locked.
    pub lockout_seconds: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            https: "0.0.0.0:443".into(),
            http_redirect: "0.0.0.0:80".into(),
            metrics: "127.0.0.1:9464".into(),
            drain_deadline: 3600,
            certificate: String::new(),
            key: String::new(),
            session_idle_minutes: 30,
            max_failed_logins: PasswordPolicy::default().max_failures,
            lockout_seconds: PasswordPolicy::default().lockout_secs,
        }
    }
}

/// `[admin]` checked.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// The HTTPS listener (`None`: off).
    pub https: Option<SocketAddr>,
    /// The redirect listener (`None`: off).
    pub http_redirect: Option<SocketAddr>,
    /// The metrics and health listener (`None`: off).
    pub metrics: Option<SocketAddr>,
    /// How long a drain lets meetings run.
    pub drain_deadline: std::time::Duration,
    /// A web identity of its own: certificate and key paths.
    pub identity: Option<(String, String)>,
    /// Password rules.
    pub passwords: PasswordPolicy,
    /// Session rules.
    pub sessions: SessionPolicy,
}

impl AdminConfig {
    /// Checks the section: the key and what is wrong on error.
    pub fn check(self) -> Result<AdminSettings, (&'static str, String)> {
        let addr =
            |key: &'static str, v: &str| -> Result<Option<SocketAddr>, (&'static str, String)> {
                if v.is_empty() {
                    return Ok(None);
                }
                v.parse()
                    .map(Some)
                    .map_err(|_| (key, format!("`{v}` is not an address:port")))
            };
        let https = addr("admin.https", &self.https)?;
        let http_redirect = addr("admin.http_redirect", &self.http_redirect)?;
        let metrics = addr("admin.metrics", &self.metrics)?;
        if !(1..=7 * 86_400).contains(&self.drain_deadline) {
            return Err(("admin.drain_deadline", "1-604800 seconds".into()));
        }
        if http_redirect.is_some() && https.is_none() {
            return Err((
                "admin.http_redirect",
                "redirects to admin.https, which is off".into(),
            ));
        }
        let identity = match (self.certificate.is_empty(), self.key.is_empty()) {
            (true, true) => None,
            (false, false) => Some((self.certificate, self.key)),
            _ => {
                return Err((
                    "admin.certificate",
                    "admin.certificate and admin.key go together".into(),
                ));
            }
        };
        if !(1..=24 * 60).contains(&self.session_idle_minutes) {
            return Err(("admin.session_idle_minutes", "1-1440".into()));
        }
        if !(1..=100).contains(&self.max_failed_logins) {
            return Err(("admin.max_failed_logins", "1-100".into()));
        }
        if !(1..=86_400).contains(&self.lockout_seconds) {
            return Err(("admin.lockout_seconds", "1-86400".into()));
        }
        Ok(AdminSettings {
            https,
            http_redirect,
            metrics,
            drain_deadline: std::time::Duration::from_secs(self.drain_deadline),
            identity,
            passwords: PasswordPolicy {
                max_failures: self.max_failed_logins,
                lockout_secs: self.lockout_seconds,
                ..PasswordPolicy::default()
            },
            sessions: SessionPolicy {
                idle_secs: self.session_idle_minutes * 60,
                ..SessionPolicy::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml_text: &str) -> Result<AdminSettings, (&'static str, String)> {
        toml::from_str::<AdminConfig>(toml_text).unwrap().check()
    }

    #[test]
    fn the_defaults_are_the_seeds_ports_and_bad_values_name_their_key() {
        let d = check("").unwrap();
        assert_eq!(d.https, Some("0.0.0.0:443".parse().unwrap()));
        assert_eq!(d.http_redirect, Some("0.0.0.0:80".parse().unwrap()));
        assert_eq!(d.metrics, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(d.drain_deadline.as_secs(), 3600);
        assert_eq!(d.identity, None);
        assert_eq!(d.sessions.idle_secs, 1800);
        let off = check("https = \"\"\nhttp_redirect = \"\"\n").unwrap();
        assert_eq!((off.https, off.http_redirect), (None, None));
        for (bad, key) in [
            ("https = \"443\"", "admin.https"),
            ("https = \"\"", "admin.http_redirect"),
            ("certificate = \"web.pem\"", "admin.certificate"),
            ("session_idle_minutes = 0", "admin.session_idle_minutes"),
            ("max_failed_logins = 0", "admin.max_failed_logins"),
            ("lockout_seconds = 0", "admin.lockout_seconds"),
            ("metrics = \"x\"", "admin.metrics"),
            ("drain_deadline = 0", "admin.drain_deadline"),
        ] {
            assert_eq!(check(bad).unwrap_err().0, key, "{bad}");
        }
        assert!(
            toml::from_str::<AdminConfig>("htps = \"x\"").is_err(),
            "unknown keys"
        );
    }
}
