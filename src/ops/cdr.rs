//! Call detail records (R72; issue 17): one JSON line per call when it ends (or is
//! refused), appended to `calls.jsonl` in the data directory, which is rotated to
//! `calls.jsonl.1` when it passes its size limit; the newest records are readable through
//! `GET /api/v1/calls`. Written when the call ends, before the switch goes on, so an
//! orderly shutdown (every call ends with BYE first) loses none.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file in the data directory.
pub const FILE: &str = "calls.jsonl";
/// The size past which it is rotated.
pub const MAX_BYTES: u64 = 16 * 1024 * 1024;

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
pub enum CallEnd {
    /// The endpoint (or Unified CM) sent BYE.
    RemoteBye,
    /// The endpoint cancelled before the answer.
    Cancelled,
    /// Refused before it began: the SIP status and why.
    Refused(u16, String),
    /// A deadline passed: which (`muxctrl`, `spimap`, `dtls`, `no_ack`, `session_expired`,
    /// `transaction`).
    Timeout(String),
    /// A media line failed (DTLS fingerprint, profile, protocol): the switch sent BYE.
    MediaFailure(String),
    /// An operator kicked it.
    Kicked,
    /// An operator ended its meeting.
    MeetingEnded,
    /// The drain's deadline came.
    Drained,
    /// The switch stopped (Ctrl-C, a second SIGTERM).
    Shutdown,
    /// The switch ended it for another reason.
    Switch(String),
}

impl CallEnd {
    /// The metric label of the reason.
    pub fn label(&self) -> &'static str {
        match self {
            Self::RemoteBye => "remote_bye",
            Self::Cancelled => "cancelled",
            Self::Refused(..) => "refused",
            Self::Timeout(_) => "timeout",
            Self::MediaFailure(_) => "media_failure",
            Self::Kicked => "kicked",
            Self::MeetingEnded => "meeting_ended",
            Self::Drained => "drained",
            Self::Shutdown => "shutdown",
            Self::Switch(_) => "switch",
        }
    }
}

/// How a call was secured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSecurity {
    /// Per line: dtls, sdes or none.
    pub keying: Vec<String>,
    /// The per-hop SRTP suite (DTLS-SRTP's profile or the SDES suite), if any.
    pub per_hop_suite: Option<String>,
    /// The end-to-end media protection: `AES_CM_128_HMAC_SHA1_80 with EKT` in a secure
    /// meeting, `none` in a non-secure one.
    pub end_to_end: String,
    /// Its lock icon at the end.
    pub lock_icon: bool,
    /// `end-to-end` (TIP with EKT) or `transcrypted` (a standard endpoint whose media the
    /// switch decrypts and re-protects); absent in records written before it existed.
    #[serde(default)]
    pub media_path: Option<String>,
}

/// One call's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// SIP Call-ID.
    pub call_id: String,
    /// The meeting number.
    pub number: String,
    /// `in` or `out`.
    pub direction: String,
    /// The caller's URI (From).
    pub caller: Option<String>,
    /// The callee's URI (To).
    pub callee: Option<String>,
    /// The trunk peer's address.
    pub trunk_peer: Option<String>,
    /// Unix time of the INVITE, milliseconds.
    pub start_ms: u64,
    /// Unix time the call was established, milliseconds.
    pub answer_ms: Option<u64>,
    /// Unix time it ended, milliseconds.
    pub end_ms: u64,
    /// Seconds from the answer (or the start) to the end.
    pub duration_s: f64,
    /// Why it ended.
    pub end: CallEnd,
    /// Its security.
    pub security: CallSecurity,
    /// 1 or 3, when known.
    pub screens: Option<u8>,
    /// Datagrams in on its lines.
    pub packets_in: u64,
    /// Bytes in.
    pub bytes_in: u64,
    /// Packets forwarded to it.
    pub packets_out: u64,
    /// Their bytes.
    pub bytes_out: u64,
    /// Its media dropped, by reason.
    pub dropped: BTreeMap<String, u64>,
}

/// The records file.
#[derive(Debug, Clone)]
pub struct CallLog {
    path: PathBuf,
    max_bytes: u64,
}

impl CallLog {
    /// `calls.jsonl` in `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self::with_limit(data_dir, MAX_BYTES)
    }

    /// With a rotation size of its own (tests).
    pub fn with_limit(data_dir: &Path, max_bytes: u64) -> Self {
        Self {
            path: data_dir.join(FILE),
            max_bytes,
        }
    }

    fn rotated(&self) -> PathBuf {
        self.path.with_extension("jsonl.1")
    }

    /// Appends `record` as one line (mode 0600), rotating the file first when it is full.
    pub fn append(&self, record: &CallRecord) -> std::io::Result<()> {
        let mut line = serde_json::to_string(record).map_err(std::io::Error::other)?;
        line.push('\n');
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() + line.len() as u64 > self.max_bytes)
        {
            std::fs::rename(&self.path, self.rotated())?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(&self.path)?.write_all(line.as_bytes())
    }

    /// The newest `limit` records, newest last (the rotated file's too when needed);
    /// lines that do not parse are skipped.
    pub fn newest(&self, limit: usize) -> Vec<CallRecord> {
        let read = |p: &Path| -> Vec<CallRecord> {
            std::fs::File::open(p).map_or_else(
                |_| Vec::new(),
                |f| {
                    std::io::BufReader::new(f)
                        .lines()
                        .map_while(Result::ok)
                        .filter_map(|l| serde_json::from_str(&l).ok())
                        .collect()
                },
            )
        };
        let mut records = read(&self.path);
        if records.len() < limit {
            let mut older = read(&self.rotated());
            older.append(&mut records);
            records = older;
        }
        let skip = records.len().saturating_sub(limit);
        records.split_off(skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u64, end: CallEnd) -> CallRecord {
        CallRecord {
            call_id: format!("c{i}"),
            number: "4000".into(),
            direction: "in".into(),
            caller: Some("<sip:ep@10.0.0.1>".into()),
            callee: Some("<sip:4000@10.0.0.2>".into()),
            trunk_peer: Some("10.0.0.1:5061".into()),
            start_ms: i,
            answer_ms: Some(i + 1),
            end_ms: i + 2,
            duration_s: 0.001,
            end,
            security: CallSecurity::default(),
            screens: Some(1),
            packets_in: 1,
            bytes_in: 2,
            packets_out: 3,
            bytes_out: 4,
            dropped: BTreeMap::new(),
        }
    }

    #[test]
    fn records_are_lines_rotated_by_size_and_read_newest_last() {
        let dir = std::env::temp_dir().join(format!("mswitch-cdr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = CallLog::with_limit(&dir, 2000);
        let ends = [
            CallEnd::RemoteBye,
            CallEnd::Refused(403, "the meeting is locked".into()),
            CallEnd::Timeout("muxctrl".into()),
            CallEnd::Kicked,
            CallEnd::Drained,
        ];
        for i in 0..20 {
            log.append(&record(i, ends[i as usize % ends.len()].clone()))
                .unwrap();
        }
        assert!(dir.join("calls.jsonl.1").exists(), "rotated");
        assert!(std::fs::metadata(dir.join(FILE)).unwrap().len() <= 2000);
        let newest = log.newest(5);
        let ids: Vec<&str> = newest.iter().map(|r| r.call_id.as_str()).collect();
        assert_eq!(ids, ["c15", "c16", "c17", "c18", "c19"]);
        assert_eq!(
            newest[1].end,
            CallEnd::Refused(403, "the meeting is locked".into())
        );
        let text = std::fs::read_to_string(dir.join("calls.jsonl.1")).unwrap()
            + &std::fs::read_to_string(dir.join(FILE)).unwrap();
        assert!(
            text.contains(r#""end":{"reason":"timeout","detail":"muxctrl"}"#),
            "{text}"
        );
        assert!(text.contains(r#""end":{"reason":"kicked"}"#), "{text}");
        let all = log.newest(1000);
        assert!(
            all.len() > 5 && all.len() < 20,
            "the current and one rotated file"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
