//! Starting the switch: the TLS material, the trunk, the media workers, the admin and
//! operations side, and the start-up guide in the log.

use super::*;

/// How often trunk peers named by host are resolved again.
const PEER_RESOLVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Resolves the trunk peers configured by host name again every
/// [`PEER_RESOLVE_INTERVAL`] (R2; issue 15), off the call-control loop: what a name now
/// resolves to is what the trunk sends to and takes SIP from. A failed lookup keeps the
/// addresses the peer had, with a line that says so.
fn spawn_peer_resolver(settings: &Settings, updater: sip::driver::PeerUpdater) {
    let names: Vec<(usize, String, u16)> = settings
        .peer_names
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.clone().map(|(host, port)| (i, host, port)))
        .collect();
    if names.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PEER_RESOLVE_INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            for (peer, host, port) in &names {
                match tokio::net::lookup_host((host.as_str(), *port)).await {
                    Ok(found) => {
                        let addrs = crate::config::resolved_order(found);
                        if !addrs.is_empty() && !updater.set(*peer, addrs) {
                            return;
                        }
                    }
                    Err(e) => {
                        warn!(peer, %host, "trunk peer name does not resolve now ({e}): its last addresses stay")
                    }
                }
            }
        }
    });
}

/// What an operator needs to check the switch against after a start (issue 15, T5, R6):
/// where SIP listens, which peers are taken, what to upload to Unified CM and under which
/// subject its trunk profile must name the switch, and how to call it.
fn startup_guide(settings: &Settings, tls: Option<SocketAddr>, only_ourselves: bool) {
    let peers: Vec<String> = settings
        .peers
        .iter()
        .map(|p| match &p.subject {
            Some(s) => format!(
                "{} over {:?} presenting a certificate for {s}",
                p.addr.ip(),
                p.transport
            ),
            None => format!("{} over {:?}", p.addr.ip(), p.transport),
        })
        .collect();
    info!(
        tls = ?tls, udp = ?settings.udp, tcp = ?settings.tcp,
        "SIP listens; trunk peers taken: {}{}",
        peers.join("; "),
        if only_ourselves {
            " (the loopback default: no [[trunk]] is configured, so no keep-alive is sent)"
        } else {
            ""
        }
    );
    let files = &settings.tls_files;
    if files.certificate.is_empty() {
        let ca = crate::config::data_dir(files).join("ca.pem");
        info!(
            "Unified CM: upload {} as CallManager-trust, and set the SIP Trunk Security Profile's X.509 Subject Name to `{}` (this switch's certificate subject)",
            ca.display(),
            files.subject
        );
    } else {
        info!(
            "Unified CM: upload the CA of {} as CallManager-trust, and set the SIP Trunk Security Profile's X.509 Subject Name to that certificate's CN",
            files.certificate
        );
    }
    if let Some(tls) = tls {
        info!(
            "to call a meeting: INVITE sip:NUMBER@{tls};transport=tls from a trunk peer, over mutually authenticated TLS"
        );
    }
}

/// The address a socket toward `peer` would use: the SDP address by default.
fn route_to(peer: SocketAddr) -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind(SocketAddr::new(
        if peer.is_ipv4() {
            IpAddr::from([0, 0, 0, 0])
        } else {
            IpAddr::from([0u16; 8])
        },
        0,
    ))
    .ok()?;
    s.connect(peer).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

impl App {
    /// Loads the TLS material, binds the trunk and starts the media workers.
    pub async fn start(settings: Settings) -> Result<Self, AppError> {
        let loopback = settings.tls.is_some_and(|a| a.ip().is_loopback());
        let tls_sources = crate::certs::TlsSources::load(&settings.tls_files, loopback)?;
        let policy = tls_sources.policy()?;
        if tls_sources.uploaded(crate::certs::store::Unit::SipIdentity) {
            info!(
                "the SIP identity uploaded through the API is used ({}), not the configuration's",
                tls_sources
                    .store
                    .dir(crate::certs::store::Unit::SipIdentity)
                    .display()
            );
        }
        match tls_sources.origin.clone() {
            crate::certs::Origin::Generated(dir) => info!(
                "no certificate configured: made a local CA and a {} certificate for {} in {}, and dropped the CA's key (upload ca.pem to the trunk peer's trust store)",
                settings.tls_files.key_type,
                settings.tls_files.subject,
                dir.display()
            ),
            crate::certs::Origin::Reused(dir) => info!(
                "no certificate configured: using the one made earlier in {}",
                dir.display()
            ),
            crate::certs::Origin::Configured => {}
        }
        // A peer at our own listening port on loopback is ourselves (the out-of-the-box
        // default): no keep-alive toward it (issue 15: every fresh start opened TLS to its
        // own listener and logged two TLS errors).
        let listening_ports: Vec<u16> = [settings.udp, settings.tcp, settings.tls]
            .iter()
            .flatten()
            .map(SocketAddr::port)
            .collect();
        let only_ourselves = !settings.peers.is_empty()
            && settings
                .peers
                .iter()
                .all(|p| p.addr.ip().is_loopback() && listening_ports.contains(&p.addr.port()));
        let options_interval = settings.options_interval.filter(|_| !only_ourselves);
        let trunk = Trunk::start_with(
            TrunkConfig {
                udp: settings.udp,
                tcp: settings.tcp,
                tls_listen: settings.tls,
                tls: Some(policy.clone()),
                agent: AgentConfig {
                    peers: settings.peers.clone(),
                    options_interval,
                    session_expires: settings.session_expires,
                    min_se: settings.min_se,
                    ..AgentConfig::default()
                },
            },
            settings.stream_limits,
        )
        .await?;
        let (tx, rx) = std::sync::mpsc::channel();
        let pool = WorkerPool::spawn_with(
            settings.workers,
            tx,
            switch::udp::WorkerOptions {
                batch: settings.batch,
                gso: settings.gso,
                gro: settings.gro,
            },
        )?;
        // Meeting events cross from the workers' threads into the runtime.
        let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("meeting-events".into())
            .spawn(move || {
                while let Ok(e) = rx.recv() {
                    if events_tx.send(e).is_err() {
                        return;
                    }
                }
            })?;
        let media_ip = settings
            .media_address
            .or_else(|| settings.peers.first().and_then(|p| route_to(p.addr)))
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let identity =
            Arc::new(DtlsIdentity::generate().map_err(|e| std::io::Error::other(e.to_string()))?);
        startup_guide(
            &settings,
            trunk.local_addr(sip::ua::Transport::Tls),
            only_ourselves,
        );
        spawn_peer_resolver(&settings, trunk.peer_updater());
        info!(
            udp = ?settings.udp, tcp = ?settings.tcp, tls = ?settings.tls, media = %media_ip,
            workers = settings.workers, batch = settings.batch, security = ?settings.security,
            "mswitch running"
        );
        match switch::udp::raise_open_files_limit() {
            Ok((soft, hard)) => info!(
                soft,
                hard, "open files limit (media sockets and SIP connections)"
            ),
            Err(e) => warn!("the open files limit could not be read or raised: {e}"),
        }
        if settings.security.requires_tls() {
            info!(
                security = ?settings.security,
                udp = ?settings.udp,
                tcp = ?settings.tcp,
                "SIP is taken only over mutually authenticated TLS in this mode: clear SIP, even from a trunk peer's address, is dropped; the clear listeners are off unless configured"
            );
        }
        if let Ok(range) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            && let Some(o) = crate::config::ephemeral_overlap(&settings.ports, &range)
        {
            warn!(
                "media ports {}-{} overlap the kernel's ephemeral port range ({}): an outgoing connection may take a media port there; narrow media.ports or net.ipv4.ip_local_port_range",
                o.start(),
                o.end(),
                range.split_whitespace().collect::<Vec<_>>().join("-")
            );
        }
        #[cfg(feature = "tools")]
        if settings.sfu_baseline {
            warn!(
                "--sfu-baseline (mswitch load): every packet is decrypted and re-encrypted per receiver, for comparison only"
            );
        }
        let mut settings = settings;
        let admin = admin::start_admin(&mut settings, &tls_sources)?;
        let cluster = match &settings.cluster {
            Some(c) => Some(
                cluster::ClusterSide::start(
                    c,
                    trunk.local_addr(sip::ua::Transport::Tls),
                    settings
                        .admin
                        .https
                        .map(|a| format!("https://{a}"))
                        .unwrap_or_default(),
                )
                .await?,
            ),
            None => None,
        };
        let calls = CallLog::new(&crate::config::data_dir(&settings.tls_files));
        let notifier = ops::start_webhooks(&settings, &tls_sources)?;
        Ok(Self {
            admin,
            ops: OpsSide {
                drain: None,
                calls,
                notifier,
            },
            tls: tls_sources,
            expiry: crate::certs::expiry::ExpiryWatch::new(&settings.tls_files.expiry_warning_days),
            ports: PortAllocator::new(settings.ports.clone()),
            sdes_suites: settings.suites.iter().map(|s| s.sdes_name()).collect(),
            settings,
            trunk,
            pool,
            events,
            identity,
            media_ip,
            meetings: HashMap::new(),
            calls: HashMap::new(),
            next_meeting: 1,
            next_participant: 1,
            next_leg: 1,
            cluster,
        })
    }
}
