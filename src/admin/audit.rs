//! The audit log (issue 16, seeds-mgmt.md): every change an operator makes, one JSON line
//! each (who, when, from where, what, result), appended to `audit.log` in the data
//! directory and never rewritten.

use std::io::Write;
use std::path::Path;

/// One entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// Unix time, seconds.
    pub at: u64,
    /// The account.
    pub user: String,
    /// Where the request came from.
    pub from: String,
    /// What was asked (`admin passwd ops`, `kick 4000/3`, ...).
    pub action: String,
    /// `ok`, or why not.
    pub result: String,
}

/// Appends `entry` as one line to the log at `path` (created with mode 0600).
pub fn append(path: &Path, entry: &AuditEntry) -> std::io::Result<()> {
    let mut line = serde_json::to_string(entry).map_err(std::io::Error::other)?;
    line.push('\n');
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    f.write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_appended_one_json_line_each() {
        let dir = std::env::temp_dir().join(format!("mswitch-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        let entry = |action: &str| AuditEntry {
            at: 1,
            user: "ops".into(),
            from: "cli".into(),
            action: action.into(),
            result: "ok\nforged=1".into(),
        };
        append(&path, &entry("a")).unwrap();
        append(&path, &entry("b")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.len(),
            2,
            "a newline in a value does not break a line: {text}"
        );
        let back: AuditEntry = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(back, entry("b"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
