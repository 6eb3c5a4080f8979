//! The registry reconciled with what a node really runs (issue 21, "etcd back"). Claims
//! and meetings drift apart while etcd cannot be reached, or when a claim was won for a
//! call that was then refused: a meeting served here unregistered (`etcd_down = "local"`)
//! has no claim, and a claim may stand for a meeting that no longer runs here. Pure: what
//! runs and what is claimed in, the steps out; the node's task takes them.

use std::collections::{BTreeMap, BTreeSet};

/// One step toward a registry that says what the node runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A claim of this node for a meeting that does not run here: given back (only if
    /// still held under `token`).
    Release {
        /// The meeting.
        number: String,
        /// The claim's token.
        token: i64,
    },
    /// A meeting that runs here without this node's claim: claimed now. Should another
    /// node hold it, that node's meeting is the registered one and this one must end.
    Claim {
        /// The meeting.
        number: String,
    },
}

/// The steps, from `running` (what runs here: meeting number -> the token it was served
/// under, `None` when served unregistered), `claims` (this node's claims in etcd: number
/// -> token) and `recent` (claims won so lately that call control may not have started
/// their meetings yet: left alone).
pub fn plan(
    running: &BTreeMap<String, Option<i64>>,
    claims: &BTreeMap<String, i64>,
    recent: &BTreeSet<String>,
) -> Vec<Step> {
    let releases = claims
        .iter()
        .filter(|(number, _)| !running.contains_key(*number) && !recent.contains(*number))
        .map(|(number, &token)| Step::Release {
            number: number.clone(),
            token,
        });
    let claims = running
        .keys()
        .filter(|number| !claims.contains_key(*number))
        .map(|number| Step::Claim {
            number: number.clone(),
        });
    releases.chain(claims).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map<V: Copy>(items: &[(&str, V)]) -> BTreeMap<String, V> {
        items.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn what_runs_unclaimed_is_claimed_and_claims_for_nothing_are_released() {
        let running = map(&[("7000", Some(11)), ("7001", None)]);
        let claims = map(&[("7000", 11), ("7002", 15), ("7003", 16)]);
        let recent: BTreeSet<String> = ["7003".to_owned()].into();
        assert_eq!(
            plan(&running, &claims, &recent),
            [
                Step::Release {
                    number: "7002".into(),
                    token: 15
                },
                Step::Claim {
                    number: "7001".into()
                },
            ]
        );
    }

    #[test]
    fn a_registry_that_says_what_runs_needs_nothing() {
        let running = map(&[("7000", Some(11))]);
        let claims = map(&[("7000", 11)]);
        assert!(plan(&running, &claims, &BTreeSet::new()).is_empty());
        assert!(plan(&BTreeMap::new(), &BTreeMap::new(), &BTreeSet::new()).is_empty());
    }
}
