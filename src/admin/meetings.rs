//! Meetings configured through the admin API, kept in `meetings.json` in the data
//! directory so that a restart keeps them. Meetings of the configuration file stay the
//! file's: the API reads them but changes only its own.

use std::path::Path;

use serde::{Deserialize, Serialize};
use switch::meeting::switching::Mode;

use crate::policy::Policy;

/// The file in the data directory.
pub const FILE: &str = "meetings.json";

/// One configured meeting as the file keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredMeeting {
    /// The meeting number.
    pub number: String,
    /// Its policy.
    pub policy: Policy,
    /// `site` or `segment`.
    pub switching: String,
}

/// `site` or `segment`.
pub fn parse_mode(s: &str) -> Option<Mode> {
    match s {
        "site" => Some(Mode::Site),
        "segment" => Some(Mode::Segment),
        _ => None,
    }
}

/// The name of a mode in the file and the API.
pub fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Site => "site",
        Mode::Segment => "segment",
    }
}

/// The name of a policy in the file and the API.
pub fn policy_name(p: Policy) -> &'static str {
    match p {
        Policy::Secure => "secure",
        Policy::NonSecure => "non-secure",
        Policy::BestEffort => "best-effort",
    }
}

/// The API's meetings in `data_dir` (none when the file does not exist).
pub fn load(data_dir: &Path) -> Result<Vec<(String, Policy, Mode)>, String> {
    let path = data_dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let stored: Vec<StoredMeeting> =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    stored
        .into_iter()
        .map(|m| {
            let mode = parse_mode(&m.switching).ok_or_else(|| {
                format!(
                    "{}: meeting {}: switching `{}`",
                    path.display(),
                    m.number,
                    m.switching
                )
            })?;
            Ok((m.number, m.policy, mode))
        })
        .collect()
}

/// Writes the API's meetings (through a temporary file and a rename: never half written).
pub fn save(data_dir: &Path, meetings: &[(String, Policy, Mode)]) -> std::io::Result<()> {
    let stored: Vec<StoredMeeting> = meetings
        .iter()
        .map(|(n, p, m)| StoredMeeting {
            number: n.clone(),
            policy: *p,
            switching: mode_name(*m).into(),
        })
        .collect();
    let json = serde_json::to_string_pretty(&stored).map_err(std::io::Error::other)?;
    std::fs::create_dir_all(data_dir)?;
    let tmp = data_dir.join(format!("{FILE}.tmp"));
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, data_dir.join(FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meetings_survive_a_save_and_a_load() {
        let dir = std::env::temp_dir().join(format!("mswitch-meetings-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(load(&dir), Ok(Vec::new()), "no file: none");
        let m = vec![
            ("4000".to_owned(), Policy::Secure, Mode::Segment),
            ("5000".to_owned(), Policy::BestEffort, Mode::Site),
        ];
        save(&dir, &m).unwrap();
        assert_eq!(load(&dir), Ok(m));
        std::fs::write(
            dir.join(FILE),
            "[{\"number\":\"1\",\"policy\":\"secure\",\"switching\":\"x\"}]",
        )
        .unwrap();
        assert!(load(&dir).unwrap_err().contains("switching `x`"));
        std::fs::write(dir.join(FILE), "{").unwrap();
        assert!(
            load(&dir).is_err(),
            "a broken file is an error, not an empty list"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
