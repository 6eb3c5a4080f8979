//! The generator's threads: the simulated endpoints are spread over them (each thread a
//! tokio runtime of its own with its calls on one [`LocalSet`]), so that the generator
//! uses the cores the switch under test leaves and is not the limit of the run (issue 20).

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use sip::tls::TlsPolicy;
use switch::dtls::DtlsIdentity;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::task::LocalSet;

use super::traffic::{CallPlan, CallStats, Shared};
use super::{standard, traffic};

/// Who dials.
#[derive(Debug, Clone)]
pub enum Dial {
    /// A TIP endpoint.
    Tip(CallPlan),
    /// A standard SIP endpoint (a transcrypt leg).
    Standard(CallPlan),
}

/// What every call of a run shares.
#[derive(Clone)]
struct Run {
    policy: TlsPolicy,
    sip: SocketAddr,
    dtls: Arc<DtlsIdentity>,
    shared: Arc<Shared>,
}

/// The generator's threads, taking calls round robin.
pub struct Generator {
    queues: Vec<UnboundedSender<Dial>>,
    threads: Vec<JoinHandle<Vec<CallStats>>>,
    next: usize,
}

impl Generator {
    /// Starts `threads` threads (at least one) for calls to the switch at `sip`.
    pub fn start(
        threads: usize,
        policy: TlsPolicy,
        sip: SocketAddr,
        dtls: Arc<DtlsIdentity>,
        shared: Arc<Shared>,
    ) -> std::io::Result<Self> {
        let run = Run {
            policy,
            sip,
            dtls,
            shared,
        };
        let mut generator = Self {
            queues: Vec::new(),
            threads: Vec::new(),
            next: 0,
        };
        for i in 0..threads.max(1) {
            let (tx, mut rx) = unbounded_channel::<Dial>();
            let run = run.clone();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let thread = std::thread::Builder::new()
                .name(format!("load-{i}"))
                .spawn(move || {
                    LocalSet::new().block_on(&runtime, async move {
                        let mut calls = Vec::new();
                        while let Some(dial) = rx.recv().await {
                            let r = run.clone();
                            calls.push(tokio::task::spawn_local(async move {
                                match dial {
                                    Dial::Tip(plan) => {
                                        traffic::run_call(plan, r.policy, r.sip, r.dtls, r.shared)
                                            .await
                                    }
                                    Dial::Standard(plan) => {
                                        standard::run_standard_call(
                                            plan, r.policy, r.sip, r.dtls, r.shared,
                                        )
                                        .await
                                    }
                                }
                            }));
                        }
                        let mut stats = Vec::new();
                        for c in calls {
                            if let Ok(s) = c.await {
                                stats.push(s);
                            }
                        }
                        stats
                    })
                })?;
            generator.queues.push(tx);
            generator.threads.push(thread);
        }
        Ok(generator)
    }

    /// Hands a call to the next thread.
    pub fn dial(&mut self, dial: Dial) {
        let _ = self.queues[self.next % self.queues.len()].send(dial);
        self.next += 1;
    }

    /// Every call's measurements, once they have stopped (after [`Shared::stop`]).
    pub async fn finish(self) -> Vec<CallStats> {
        drop(self.queues);
        let threads = self.threads;
        tokio::task::spawn_blocking(move || {
            threads
                .into_iter()
                .filter_map(|t| t.join().ok())
                .flatten()
                .collect()
        })
        .await
        .unwrap_or_default()
    }
}
