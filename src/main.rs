//! mswitch: a secure multipoint media switch. Endpoints' SRTP is forwarded without
//! decrypting the payload: verified, stripped of its appended byte, re-addressed by CSRC
//! and re-signed (shared/design/ARCHITECTURE.md).
//!
//! `mswitch run` runs the switch: the SIP trunk (`sip`) and the media workers (`switch`)
//! joined by call control (`mswitch::app`). `mswitch selftest` checks the forwarding path
//! on the published vectors.

use std::process::ExitCode;

const USAGE: &str = "\
mswitch - secure multipoint media switch

USAGE:
    mswitch <COMMAND>

COMMANDS:
    demo                 the switch and three simulated TIP endpoints on loopback: a timeline, exit 0 if every check held
    load [OPTIONS]       meetings of simulated endpoints against the switch, measured (`mswitch load --help`)
    run [--config FILE]  run the switch (SIP trunk + media plane); every setting has a default
    admin passwd USER [--role admin|viewer] [--config FILE]
                         set an operator account's password (read from standard input)
    selftest             forward the published EKT vectors through the fast path and check every byte
    version              print the version
    help                 print this help

Logs go to stderr; RUST_LOG=debug for more. Exit codes: 0 success (also after Ctrl-C or
SIGTERM, once every call got BYE), 1 a check or the start failed, 2 usage or configuration
error (including `TLS error: Error loading Private key file`).";

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
        Some("run") => run(std::env::args().skip(2).collect()),
        Some("admin") => admin(&std::env::args().skip(2).collect::<Vec<_>>()),
        #[cfg(feature = "tools")]
        Some("demo") => demo(),
        #[cfg(feature = "tools")]
        Some("load") => load(&std::env::args().skip(2).collect::<Vec<_>>()),
        #[cfg(not(feature = "tools"))]
        Some(tool @ ("demo" | "load")) => {
            eprintln!(
                "mswitch: `{tool}` is a test tool, and this switch was built without them (cargo feature `tools`)"
            );
            ExitCode::from(2)
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

fn run(args: Vec<String>) -> ExitCode {
    // `mswitch load` runs the switch it measures as an SFU for comparison; that mode exists
    // only in builds with the tools, and never in the configuration file.
    #[cfg(feature = "tools")]
    let (args, sfu_baseline) = {
        let flag = mswitch::load::SFU_BASELINE_FLAG;
        let on = args.iter().any(|a| a == flag);
        (
            args.into_iter().filter(|a| a != flag).collect::<Vec<_>>(),
            on,
        )
    };
    let config = match args.as_slice() {
        [] => None,
        [flag, path] if flag == "--config" || flag == "-c" => Some(std::path::PathBuf::from(path)),
        _ => {
            eprintln!("mswitch run: expected `--config FILE`\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let settings = match &config {
        Some(p) => mswitch::config::Config::load(p),
        None => mswitch::config::Config::default().check(),
    };
    #[cfg_attr(not(feature = "tools"), allow(unused_mut))]
    let mut settings = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mswitch: {e}");
            return ExitCode::from(2);
        }
    };
    #[cfg(feature = "tools")]
    {
        settings.sfu_baseline = sfu_baseline;
    }
    mswitch::logging::init(settings.log_json);
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        // The handlers are in place before the (possibly slow: key generation) start, so
        // that a SIGTERM or SIGHUP during it is taken as while running.
        let signals = Signals::register();
        let app = match mswitch::app::App::start(settings).await {
            Ok(a) => a,
            Err(mswitch::app::AppError::Certs(e)) => {
                tracing::error!("{e}");
                return ExitCode::from(2);
            }
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let (stops, stopped) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(signals.forward(stops, config));
        app.run_until(stopped).await;
        ExitCode::SUCCESS
    })
}

/// `mswitch admin passwd USER [--role admin|viewer] [--config FILE]`: the new password is
/// the first line of standard input (never an argument: it would show in `ps`).
fn admin(args: &[String]) -> ExitCode {
    let usage = "usage: mswitch admin passwd USER [--role admin|viewer] [--config FILE]";
    let [verb, user, rest @ ..] = args else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    if verb != "passwd" {
        eprintln!("{usage}");
        return ExitCode::from(2);
    }
    let (mut role, mut config) = (mswitch::admin::accounts::Role::Admin, None);
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next().map(String::as_str)) {
            ("--role", Some("admin")) => role = mswitch::admin::accounts::Role::Admin,
            ("--role", Some("viewer")) => role = mswitch::admin::accounts::Role::Viewer,
            ("--config" | "-c", Some(path)) => config = Some(std::path::PathBuf::from(path)),
            _ => {
                eprintln!("{usage}");
                return ExitCode::from(2);
            }
        }
    }
    let data_dir = match config {
        Some(p) => mswitch::config::Config::load(&p).map(|s| s.tls_files.data_dir),
        None => mswitch::config::Config::default()
            .check()
            .map(|s| s.tls_files.data_dir),
    };
    let data_dir = match data_dir {
        Ok(d) => std::path::PathBuf::from(d),
        Err(e) => {
            eprintln!("mswitch: {e}");
            return ExitCode::from(2);
        }
    };
    let mut password = String::new();
    if std::io::stdin().read_line(&mut password).is_err() {
        eprintln!("mswitch admin passwd: no password on standard input");
        return ExitCode::from(2);
    }
    let password = password.trim_end_matches(['\r', '\n']);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match mswitch::admin::store::set_password(
        &data_dir,
        user,
        role,
        password,
        ("cli", "local", now),
    ) {
        Ok(()) => {
            println!("password of {user} set ({role:?})");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mswitch admin passwd: {e}");
            ExitCode::from(2)
        }
    }
}

/// The signals the switch handles, registered up front.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn register() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            term: signal(SignalKind::terminate()).ok(),
            hup: signal(SignalKind::hangup()).ok(),
        }
    }

    /// SIGTERM drains (a second one stops at once), Ctrl-C stops at once (issue 17).
    /// SIGHUP reads the configuration file again and applies its certificate paths
    /// (`[tls]`, `[admin] certificate`/`key`) to new connections, calls going on (issue
    /// 18); the rest of a changed file needs a restart.
    async fn forward(
        mut self,
        stops: tokio::sync::mpsc::UnboundedSender<mswitch::app::Stop>,
        config: Option<std::path::PathBuf>,
    ) {
        async fn next(s: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
            match s {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        }
        loop {
            let stop = tokio::select! {
                _ = tokio::signal::ctrl_c() => mswitch::app::Stop::Now,
                Some(()) = next(&mut self.term) => mswitch::app::Stop::Drain,
                Some(()) = next(&mut self.hup) => {
                    let settings = match &config {
                        Some(p) => mswitch::config::Config::load(p),
                        None => mswitch::config::Config::default().check(),
                    };
                    match settings {
                        Ok(s) => mswitch::app::Stop::Reload(Box::new(s)),
                        Err(e) => {
                            tracing::error!("SIGHUP: the configuration does not load, nothing changes: {e}");
                            continue;
                        }
                    }
                }
            };
            if stops.send(stop).is_err() {
                return;
            }
        }
    }
}

#[cfg(feature = "tools")]
fn demo() -> ExitCode {
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(mswitch::demo::run()) {
        Ok(timeline) => {
            println!("{timeline}");
            ExitCode::SUCCESS
        }
        Err(timeline) => {
            println!("{timeline}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "tools")]
fn load(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", mswitch::load::args::USAGE);
        return ExitCode::SUCCESS;
    }
    let opts = match mswitch::load::LoadOptions::from_args(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mswitch load: {e}\n\n{}", mswitch::load::args::USAGE);
            return ExitCode::from(2);
        }
    };
    // One thread: the generator keeps to one core and leaves the other to the switch.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mswitch load: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(mswitch::load::run(&opts)) {
        Ok(report) => {
            println!("{report}");
            println!(
                "written: {0}/load.txt, {0}/load.json, {0}/load.svg",
                opts.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mswitch load: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The control plane's runtime (media runs on its own worker threads).
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("mswitch: runtime: {e}");
            ExitCode::FAILURE
        })
}
