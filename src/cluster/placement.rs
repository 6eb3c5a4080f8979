//! Where a call for a meeting goes: served here, redirected to the node that owns the
//! meeting or to the least-loaded one, or refused. Pure: the registry's view and this
//! node's state in, a [`Route`] out.

use serde::{Deserialize, Serialize};

/// What a node publishes about itself (its registry record, refreshed while it is
/// healthy; it lapses with the node's lease).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Unique in the cluster (`[cluster] node_id`).
    pub id: String,
    /// Where calls for its meetings go (the Contact of a 302), e.g.
    /// `sip:10.0.0.2:5061;transport=tls`.
    pub sip_uri: String,
    /// Its admin API, for operators and tools.
    pub admin: String,
    /// Meetings it runs.
    pub meetings: u32,
    /// Segments (screens) in them.
    pub segments: u32,
    /// CPU use of its media workers, 0.0-1.0 per worker on average.
    pub cpu: f32,
    /// It is draining: it takes no new meeting.
    pub draining: bool,
}

/// Who owns a meeting, as the registry says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// No one: the meeting is new (or its owner's lease lapsed).
    Nobody,
    /// This node, under this fencing token.
    Here {
        /// The claim's revision.
        token: i64,
    },
    /// Another node.
    Elsewhere {
        /// Its id.
        node: String,
        /// The claim's revision.
        token: i64,
    },
}

/// When etcd cannot be reached, what happens to a call for a meeting this node does not
/// run (`[cluster] etcd_down`). Running meetings go on either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EtcdDown {
    /// Refuse it (503): never two owners, at the cost of new meetings while etcd is away.
    #[default]
    Refuse,
    /// Serve it here, unregistered; when etcd is back the node claims it, and if another
    /// node got it meanwhile this one ends it.
    Local,
}

impl EtcdDown {
    /// Its name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Refuse => "refuse",
            Self::Local => "local",
        }
    }

    /// What a new meeting gets under this rule, for readiness and logs.
    pub fn what_new_meetings_get(self) -> &'static str {
        match self {
            Self::Refuse => "refused (etcd_down = \"refuse\")",
            Self::Local => "served here unregistered (etcd_down = \"local\")",
        }
    }
}

/// This node's limits for taking *new* meetings (0: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    /// Most meetings.
    pub max_meetings: u32,
    /// Most CPU (0.0-1.0; 0: no limit).
    pub max_cpu: f32,
}

impl Limits {
    /// Whether a node with `n`'s load takes no new meeting.
    fn full(&self, n: &NodeRecord) -> bool {
        (self.max_meetings > 0 && n.meetings >= self.max_meetings)
            || (self.max_cpu > 0.0 && n.cpu >= self.max_cpu)
    }
}

/// Why a call is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// etcd is unreachable and `etcd_down = "refuse"`.
    RegistryUnreachable,
    /// The owner's record is gone (its lease is lapsing): the caller retries shortly.
    OwnerGone,
    /// This node is draining or full and no other node can take the meeting.
    NoCapacity,
}

/// Where a call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Served here; `claim`: the meeting is new and must be claimed first.
    Serve {
        /// Claim it before serving (a claim lost to a race redirects to the winner).
        claim: bool,
    },
    /// `302 Moved Temporarily` to this node.
    Redirect {
        /// The node.
        node: String,
        /// Its SIP URI (the Contact).
        sip_uri: String,
    },
    /// Refused (503 with Retry-After).
    Refuse(Refusal),
}

/// Where a call for a meeting goes. `owner` is the registry's answer (`None`: etcd could
/// not be reached); `runs_here`: this node already runs the meeting; `nodes`: the live
/// nodes (this one among them).
pub fn route(
    me: &NodeRecord,
    runs_here: bool,
    owner: Option<&Owner>,
    nodes: &[NodeRecord],
    limits: Limits,
    etcd_down: EtcdDown,
) -> Route {
    let Some(owner) = owner else {
        return if runs_here || etcd_down == EtcdDown::Local {
            Route::Serve { claim: false }
        } else {
            Route::Refuse(Refusal::RegistryUnreachable)
        };
    };
    match owner {
        Owner::Here { .. } => Route::Serve { claim: false },
        Owner::Elsewhere { node, .. } => match nodes.iter().find(|n| &n.id == node) {
            Some(n) => Route::Redirect {
                node: n.id.clone(),
                sip_uri: n.sip_uri.clone(),
            },
            None => Route::Refuse(Refusal::OwnerGone),
        },
        Owner::Nobody if runs_here => Route::Serve { claim: true },
        Owner::Nobody if me.draining || limits.full(me) => {
            match least_loaded(nodes, limits, &me.id) {
                Some(n) => Route::Redirect {
                    node: n.id.clone(),
                    sip_uri: n.sip_uri.clone(),
                },
                None => Route::Refuse(Refusal::NoCapacity),
            }
        }
        Owner::Nobody => Route::Serve { claim: true },
    }
}

/// The node that should take a new meeting: not draining, not full, the fewest segments
/// (then meetings, then CPU, then id, so that every node picks the same); never `except`.
pub fn least_loaded<'a>(
    nodes: &'a [NodeRecord],
    limits: Limits,
    except: &str,
) -> Option<&'a NodeRecord> {
    nodes
        .iter()
        .filter(|n| n.id != except && !n.draining && !limits.full(n))
        .min_by(|a, b| {
            (a.segments, a.meetings)
                .cmp(&(b.segments, b.meetings))
                .then(a.cpu.total_cmp(&b.cpu))
                .then(a.id.cmp(&b.id))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, meetings: u32, segments: u32) -> NodeRecord {
        NodeRecord {
            id: id.into(),
            sip_uri: format!("sip:{id}.example:5061;transport=tls"),
            admin: format!("https://{id}.example:8443"),
            meetings,
            segments,
            cpu: 0.1,
            draining: false,
        }
    }

    #[test]
    fn a_meeting_owned_elsewhere_is_redirected_to_its_owner() {
        let (a, b) = (node("a", 1, 6), node("b", 3, 18));
        let owner = Owner::Elsewhere {
            node: "b".into(),
            token: 7,
        };
        let r = route(
            &a,
            false,
            Some(&owner),
            &[a.clone(), b.clone()],
            Limits::default(),
            EtcdDown::Refuse,
        );
        assert_eq!(
            r,
            Route::Redirect {
                node: "b".into(),
                sip_uri: b.sip_uri.clone()
            }
        );
        // An owner whose record lapsed: retry later, never take it over the live claim.
        let r = route(
            &a,
            false,
            Some(&owner),
            std::slice::from_ref(&a),
            Limits::default(),
            EtcdDown::Refuse,
        );
        assert_eq!(r, Route::Refuse(Refusal::OwnerGone));
    }

    /// A call for `owner`'s meeting at `me`, which does not run it, etcd answering.
    fn at(me: &NodeRecord, owner: Owner, nodes: &[NodeRecord], limits: Limits) -> Route {
        route(me, false, Some(&owner), nodes, limits, EtcdDown::Refuse)
    }

    #[test]
    fn a_new_meeting_is_claimed_here_unless_this_node_is_draining_or_full() {
        let (mut a, b, c) = (node("a", 2, 12), node("b", 5, 30), node("c", 1, 6));
        let all = |a: &NodeRecord| vec![a.clone(), b.clone(), c.clone()];
        let limits = Limits::default();
        assert_eq!(
            at(&a, Owner::Nobody, &all(&a), limits),
            Route::Serve { claim: true }
        );
        assert_eq!(
            at(&a, Owner::Here { token: 3 }, &all(&a), limits),
            Route::Serve { claim: false }
        );
        // Full (2 meetings of at most 2): to the least-loaded other node, c.
        let full = Limits {
            max_meetings: 2,
            max_cpu: 0.0,
        };
        let to_c = Route::Redirect {
            node: "c".into(),
            sip_uri: c.sip_uri.clone(),
        };
        assert_eq!(at(&a, Owner::Nobody, &all(&a), full), to_c);
        a.draining = true;
        assert_eq!(at(&a, Owner::Nobody, &all(&a), limits), to_c);
        // Draining and alone: refused.
        assert_eq!(
            at(&a, Owner::Nobody, std::slice::from_ref(&a), limits),
            Route::Refuse(Refusal::NoCapacity)
        );
    }

    #[test]
    fn without_etcd_running_meetings_go_on_and_new_ones_follow_the_rule() {
        let a = node("a", 1, 6);
        for rule in [EtcdDown::Refuse, EtcdDown::Local] {
            assert_eq!(
                route(&a, true, None, &[], Limits::default(), rule),
                Route::Serve { claim: false }
            );
        }
        assert_eq!(
            route(&a, false, None, &[], Limits::default(), EtcdDown::Refuse),
            Route::Refuse(Refusal::RegistryUnreachable)
        );
        assert_eq!(
            route(&a, false, None, &[], Limits::default(), EtcdDown::Local),
            Route::Serve { claim: false }
        );
    }

    #[test]
    fn the_least_loaded_node_is_the_same_for_everyone() {
        let mut nodes = vec![node("c", 1, 6), node("b", 1, 6), node("a", 4, 24)];
        assert_eq!(
            least_loaded(&nodes, Limits::default(), "x").unwrap().id,
            "b",
            "ties by id"
        );
        nodes[1].draining = true;
        assert_eq!(
            least_loaded(&nodes, Limits::default(), "x").unwrap().id,
            "c"
        );
        nodes[0].cpu = 0.9;
        let limits = Limits {
            max_meetings: 0,
            max_cpu: 0.8,
        };
        assert_eq!(least_loaded(&nodes, limits, "x").unwrap().id, "a");
        assert!(least_loaded(&nodes, limits, "a").is_none());
    }
}
