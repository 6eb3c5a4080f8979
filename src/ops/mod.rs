//! Running the switch in production (issue 17): Prometheus [`metrics`], call detail
//! records ([`cdr`]), and the plain-HTTP listener for scrapers and supervisors
//! ([`http`]: `/metrics`, `/healthz`, `/readyz`). Drain and readiness are decided by call
//! control's driver (`app`).

pub mod cdr;
pub mod http;
pub mod metrics;
pub mod webhooks;
