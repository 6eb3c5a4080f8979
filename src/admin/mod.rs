//! The operator's side of the switch (issue 16, in progress): local accounts with roles
//! and a password policy ([`accounts`]), and the append-only audit log ([`audit`]). The
//! HTTPS API and the status page that use them are not built yet; `mswitch admin passwd`
//! sets passwords now.

pub mod accounts;
pub mod audit;
pub mod store;
