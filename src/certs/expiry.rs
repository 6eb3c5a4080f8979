//! The expiry watch (issue 18, seed 004 R59): at start, after each change and daily, every
//! certificate in use is compared with the warning thresholds (`[tls]
//! expiry_warning_days`, 30, 7 and 1 days by default); each threshold a certificate
//! crosses is reported once (and expiry itself once), so a daily check does not repeat
//! yesterday's warning. Pure: details and time in, warnings out.

use std::collections::HashMap;

use super::inspect::CertDetails;

/// A certificate that crossed a threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryWarning {
    /// The unit it is in.
    pub unit: &'static str,
    /// Its subject.
    pub subject: String,
    /// SHA-256, hex.
    pub sha256: String,
    /// Not valid after (RFC 3339).
    pub not_after: String,
    /// Whole days left (negative: expired).
    pub days_left: i64,
}

impl ExpiryWarning {
    /// Expired already.
    pub fn expired(&self) -> bool {
        self.days_left < 0
    }
}

/// What was reported, per certificate.
#[derive(Debug, Clone)]
pub struct ExpiryWatch {
    /// Largest first.
    thresholds: Vec<u32>,
    /// Per SHA-256, the smallest threshold reported (-1: expiry).
    reported: HashMap<String, i64>,
}

impl ExpiryWatch {
    /// A watch with these thresholds (days before expiry).
    pub fn new(thresholds: &[u32]) -> Self {
        let mut thresholds = thresholds.to_vec();
        thresholds.sort_unstable_by(|a, b| b.cmp(a));
        thresholds.dedup();
        Self {
            thresholds,
            reported: HashMap::new(),
        }
    }

    /// The largest threshold: a certificate this close to expiry is flagged on the page.
    pub fn warn_days(&self) -> i64 {
        self.thresholds.first().map_or(0, |d| i64::from(*d))
    }

    /// The warnings due at Unix time `now` for `certs` (unit, details).
    pub fn check(&mut self, certs: &[(&'static str, CertDetails)], now: i64) -> Vec<ExpiryWarning> {
        let mut out = Vec::new();
        for (unit, d) in certs {
            let days_left = (d.validity_unix.1 - now).div_euclid(86_400);
            // The smallest threshold it has crossed, or -1 once expired.
            let level = if d.validity_unix.1 < now {
                Some(-1)
            } else {
                self.thresholds
                    .iter()
                    .rev()
                    .map(|t| i64::from(*t))
                    .find(|t| days_left < *t)
            };
            let Some(level) = level else {
                continue;
            };
            let seen = self.reported.get(&d.sha256).copied();
            if seen.is_some_and(|s| s <= level) {
                continue;
            }
            self.reported.insert(d.sha256.clone(), level);
            out.push(ExpiryWarning {
                unit,
                subject: d.subject.clone(),
                sha256: d.sha256.clone(),
                not_after: d.not_after.clone(),
                days_left,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn cert(sha: &str, not_after: i64) -> CertDetails {
        CertDetails {
            subject: format!("CN={sha}"),
            common_name: None,
            sans: Vec::new(),
            issuer: String::new(),
            serial: String::new(),
            not_before: String::new(),
            not_after: String::new(),
            validity_unix: (0, not_after),
            key_type: String::new(),
            key_bits: 0,
            sha256: sha.into(),
            eku: Vec::new(),
            is_ca: false,
            self_issued: false,
        }
    }

    #[test]
    fn each_threshold_is_reported_once_and_expiry_once_more() {
        let mut w = ExpiryWatch::new(&[7, 30, 1]);
        assert_eq!(w.warn_days(), 30);
        let not_after = 100 * DAY;
        let certs = [
            ("sip-identity", cert("a", not_after)),
            ("trunk-trust", cert("b", 10_000 * DAY)),
        ];
        let days = |w: &mut ExpiryWatch, at: i64| -> Vec<i64> {
            w.check(&certs, at).iter().map(|x| x.days_left).collect()
        };
        assert!(
            days(&mut w, not_after - 40 * DAY).is_empty(),
            "40 days: nothing"
        );
        assert_eq!(days(&mut w, not_after - 29 * DAY - 1), [29]);
        assert!(
            days(&mut w, not_after - 20 * DAY).is_empty(),
            "the next day: once only"
        );
        assert_eq!(days(&mut w, not_after - 6 * DAY - 1), [6]);
        assert_eq!(days(&mut w, not_after - DAY / 2), [0]);
        assert!(days(&mut w, not_after - 1).is_empty());
        let expired = w.check(&certs, not_after + 1);
        assert_eq!(expired.len(), 1);
        assert!(expired[0].expired() && expired[0].unit == "sip-identity");
        assert!(days(&mut w, not_after + 5 * DAY).is_empty());
    }

    #[test]
    fn a_certificate_first_seen_close_to_expiry_is_reported_at_its_level_only() {
        let mut w = ExpiryWatch::new(&[30, 7, 1]);
        let certs = [("sip-identity", cert("c", 5 * DAY))];
        let first = w.check(&certs, 0);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].days_left, 5);
        assert!(
            w.check(&certs, DAY).is_empty(),
            "still past 7, not yet past 1"
        );
        assert_eq!(w.check(&certs, 4 * DAY + 1).len(), 1, "past 1");
    }
}
