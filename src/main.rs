//! mswitch: a secure multipoint media switch. Endpoints' SRTP is forwarded without
//! decrypting the payload: verified, stripped of its appended byte, re-addressed by CSRC
//! and re-signed (shared/design/ARCHITECTURE.md).
//!
//! This build has the packet core (`ekt`, `switch::srtp`, `switch::forward`); `mswitch run`
//! arrives with the media plane and SIP trunk (issues 3-5). Until then the binary prints
//! usage and can run a built-in self-check of the forwarding path on the published vectors.

use std::process::ExitCode;

const USAGE: &str = "\
mswitch - secure multipoint media switch

USAGE:
    mswitch <COMMAND>

COMMANDS:
    selftest   forward the published EKT vectors through the fast path and check every byte
    version    print the version
    help       print this help

`mswitch run` (SIP trunk + media plane) is not in this build yet.";

fn main() -> ExitCode {
    let cmd = std::env::args().nth(1);
    match cmd.as_deref() {
        None | Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("version" | "-V" | "--version") => {
            println!("mswitch {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("selftest") => match mswitch::selftest::run() {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("selftest failed: {e}");
                ExitCode::FAILURE
            }
        },
        Some(other) => {
            eprintln!("mswitch: unknown command `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
