//! The operator's side of the switch (issue 16): the HTTPS admin API and live status page
//! ([`http`]), local accounts with roles and a password policy ([`accounts`], kept by
//! [`store`]), sign-in sessions ([`sessions`]), the append-only audit log ([`audit`]),
//! meetings configured at run time ([`meetings`]), and what the API shows ([`view`]) and
//! asks of the running switch ([`request`]).

pub mod accounts;
pub mod audit;
pub mod certificates;
pub mod certinfo;
pub mod fuzzing;
pub mod http;
pub mod levels;
pub mod meetings;
pub mod request;
pub mod sessions;
pub mod settings;
pub mod store;
pub mod view;
