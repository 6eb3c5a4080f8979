//! SIP trunk signalling: transports, transactions, dialogs and SDP (issue 4).
#![forbid(unsafe_code)]
