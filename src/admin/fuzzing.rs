//! The entry point of the admin fuzz target (`fuzz/fuzz_targets/admin_input.rs`): whatever
//! an unauthenticated client can put in front of the admin API before any handler runs:
//! headers (session cookie, bearer token, Host for the redirect), JSON bodies, a session
//! token, and the files the API keeps. Nothing may panic, and no made-up token opens a
//! session.

use axum::http::{HeaderMap, HeaderValue, header};

use super::accounts::{Accounts, PasswordPolicy, Role};
use super::http::api::{DialBody, MeetingBody, SwitchingBody};
use super::http::auth::{Login, token_of};
use super::http::page::requested_host;
use super::meetings::StoredMeeting;
use super::sessions::{SessionPolicy, Sessions};

/// Feeds `data` to every admin-side parser.
pub fn admin_input(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(data) {
        headers.insert(header::COOKIE, v.clone());
        headers.insert(header::HOST, v);
    }
    let _ = requested_host(&headers);
    let mut sessions = Sessions::new(SessionPolicy::default());
    let issued = sessions.issue(("ops", Role::Admin, [0; 32]), 1, [7; 64]);
    if let Some((token, _)) = token_of(&headers) {
        let opened = sessions.check(&token, 2);
        assert!(
            opened.is_none() || token == issued.token,
            "only the issued token opens its session"
        );
    }
    if let Ok(v) = HeaderValue::from_bytes(data) {
        let mut auth = HeaderMap::new();
        auth.insert(header::AUTHORIZATION, v);
        if let Some((token, via_cookie)) = token_of(&auth) {
            assert!(!via_cookie);
            assert!(sessions.check(&token, 2).is_none() || token == issued.token);
        }
    }
    if let Some(s) = sessions.check(&issued.token, 3) {
        assert!(!s.csrf_matches(&text) || *text == issued.csrf);
    }
    let _ = serde_json::from_slice::<Login>(data);
    let _ = serde_json::from_slice::<SwitchingBody>(data);
    let _ = serde_json::from_slice::<DialBody>(data);
    let _ = serde_json::from_slice::<MeetingBody>(data);
    let _ = serde_json::from_slice::<Vec<StoredMeeting>>(data);
    let _ = Accounts::from_json(&text, PasswordPolicy::default());
    let _ = super::request::valid_number(&text);
}

#[cfg(test)]
mod tests {
    /// The fuzz target's smoke test on pseudo-random inputs and the inputs it is about.
    #[test]
    fn admin_input_takes_anything() {
        for seed in [
            b"mswitch_session=AAAA".as_slice(),
            b"Bearer x",
            b"a=b; mswitch_session=; mswitch_session==",
            b"[::1]:80",
            b"{\"user\":\"a\",\"password\":\"b\"}",
            b"[{\"number\":\"1\",\"policy\":\"secure\",\"switching\":\"site\"}]",
            b"{\"ops\":{\"role\":\"admin\",\"hash\":\"$argon2id$\"}}",
            b"",
        ] {
            super::admin_input(seed);
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..2000 {
            let bytes: Vec<u8> = (0..len % 97)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect();
            super::admin_input(&bytes);
        }
    }
}
