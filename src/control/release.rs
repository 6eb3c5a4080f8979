//! An endpoint's software release, read from its SIP User-Agent (R37, T1 L2: a
//! TelePresence endpoint below release 1.5 is non-secure even when configured secure).
//!
//! Accepted forms: a product token that names a TelePresence system (it contains `CTS` or
//! `TelePresence`, in any case), then `/` or a space, then the release as
//! `MAJOR.MINOR[.more][(build)]`: `CTS/1.5.0`, `Cisco-TelePresence-CTS/1.4.2(35)`,
//! `Cisco TelePresence CTS 1.6.2`. Any other User-Agent (a phone, a soft client, none at
//! all) carries no release: it is judged on its offer alone.

/// A release, `MAJOR.MINOR`, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
}

impl Release {
    /// `MAJOR.MINOR[...]` at the start of `s`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor: String = parts
            .next()?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Some(Self {
            major,
            minor: minor.parse().ok()?,
        })
    }
}

impl std::fmt::Display for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The TelePresence release a User-Agent announces, if it is one of the accepted forms.
pub fn endpoint_release(user_agent: &str) -> Option<Release> {
    let tokens: Vec<&str> = user_agent.split_whitespace().collect();
    for (i, t) in tokens.iter().enumerate() {
        let (product, version) = match t.split_once('/') {
            Some((p, v)) => (p, Some(v)),
            None => (*t, None),
        };
        let lower = product.to_ascii_lowercase();
        if !(lower.contains("cts") || lower.contains("telepresence")) {
            continue;
        }
        // `Product/1.5`, or the release as the next token (`... CTS 1.6.2`), past other
        // name words.
        if let Some(r) = version.and_then(Release::parse) {
            return Some(r);
        }
        if let Some(r) = tokens[i + 1..].iter().find_map(|t| Release::parse(t)) {
            return Some(r);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(major: u32, minor: u32) -> Option<Release> {
        Some(Release { major, minor })
    }

    #[test]
    fn the_documented_forms_are_read_and_others_carry_no_release() {
        assert_eq!(endpoint_release("CTS/1.5.0"), r(1, 5));
        assert_eq!(
            endpoint_release("Cisco-TelePresence-CTS/1.4.2(35)"),
            r(1, 4)
        );
        assert_eq!(endpoint_release("Cisco TelePresence CTS 1.6.2"), r(1, 6));
        assert_eq!(endpoint_release("cts3000/1.10.1"), r(1, 10));
        assert_eq!(endpoint_release("baresip v1.0.0 (x86_64/linux)"), None);
        assert_eq!(endpoint_release("Cisco-CP7975G/9.4.2"), None);
        assert_eq!(endpoint_release("CTS/garbage"), None);
        assert_eq!(endpoint_release(""), None);
        assert!(Release::parse("1.4").unwrap() < Release::parse("1.5").unwrap());
        assert!(Release::parse("1.10").unwrap() > Release::parse("1.5").unwrap());
    }
}
