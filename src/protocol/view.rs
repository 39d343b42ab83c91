//! The seam between the protocol and what checks it. The model and the checker read a server
//! only through [`ServerView`] and rename its server ids only through [`Symmetric`], never
//! through the server's own fields or role shape; with the actor's `is_moot` and the `Actor`
//! trait, that is all they need of it. Another Raft implementation (a learner's own actor, say)
//! that implements these can be checked by the same model, properties and explorer once the
//! model is made generic over the actor — the rest is already independent of this server's
//! private shape.

use crate::protocol::log::Log;
use crate::protocol::server::{Role, ServerState, Storage};
use crate::protocol::types::{ClientReply, LogIndex, Msg, Term};
use std::hash::{Hash, Hasher};

/// What the properties and traces read of a server: Figure 2's state, no more.
pub trait ServerView {
    /// `"follower"`, `"candidate"` or `"leader"`.
    fn role_name(&self) -> &'static str;
    /// Whether it leads its current term.
    fn is_leader(&self) -> bool;
    /// currentTerm.
    fn term(&self) -> Term;
    /// votedFor in the current term.
    fn voted_for(&self) -> Option<u64>;
    /// The leader it last heard from in its current term.
    fn leader(&self) -> Option<u64>;
    /// The log, with indices that stay logical after compaction.
    fn log(&self) -> &Log;
    /// commitIndex.
    fn commit_index(&self) -> LogIndex;
    /// lastApplied.
    fn last_applied(&self) -> LogIndex;
}

impl ServerView for ServerState {
    fn role_name(&self) -> &'static str {
        ServerState::role_name(self)
    }
    fn is_leader(&self) -> bool {
        ServerState::is_leader(self)
    }
    fn term(&self) -> Term {
        self.term
    }
    fn voted_for(&self) -> Option<u64> {
        self.voted_for
    }
    fn leader(&self) -> Option<u64> {
        self.leader
    }
    fn log(&self) -> &Log {
        &self.log
    }
    fn commit_index(&self) -> LogIndex {
        self.commit_index
    }
    fn last_applied(&self) -> LogIndex {
        self.last_applied
    }
}

/// A renaming of server ids: old server `order[new]` becomes `new` (at most 8 servers). Ids of
/// other actors (clients, proposal sessions) are kept.
pub struct Renaming<'a> {
    order: &'a [usize],
    new_ids: [u64; 8],
}

impl<'a> Renaming<'a> {
    /// The renaming that puts old server `order[new]` at `new`.
    pub fn new(order: &'a [usize]) -> Self {
        let mut new_ids = [0u64; 8];
        for (new, &old) in order.iter().enumerate() {
            new_ids[old] = new as u64;
        }
        Renaming { order, new_ids }
    }

    /// Old server `order[new]` becomes `new`.
    pub fn order(&self) -> &[usize] {
        self.order
    }

    /// A server's new id; other actors keep theirs.
    pub fn id(&self, x: u64) -> u64 {
        if (x as usize) < self.order.len() {
            self.new_ids[x as usize]
        } else {
            x
        }
    }

    /// Whether every server keeps its id.
    pub fn is_identity(&self) -> bool {
        self.order.iter().enumerate().all(|(new, &old)| new == old)
    }

    /// Per-server values (timers, replication indices) in the renamed order.
    pub fn permuted<'b, T: Copy>(&'b self, per_server: &'b [T]) -> impl Iterator<Item = T> + 'b {
        self.order.iter().map(move |&old| per_server[old])
    }

    /// A set of servers as a bit set (a candidate's voters), renamed.
    pub fn votes(&self, votes: u64) -> u64 {
        (0..self.order.len() as u64)
            .filter(|v| votes & (1 << v) != 0)
            .fold(0, |acc, v| acc | 1 << self.id(v))
    }
}

/// What symmetry reduction needs of a value that may name servers: a hash of everything but
/// those names, a hash of the names as renamed, and the renamed value. A value and any renaming
/// of it have the same `hash_without_ids`; `hash_ids` under a renaming equals `hash_ids` of the
/// renamed value under the identity, so the checker can hash a renamed state without building it.
pub trait Symmetric: Sized {
    /// Feeds `h` everything but the server ids the value holds.
    fn hash_without_ids<H: Hasher>(&self, h: &mut H);
    /// Feeds `h` the server ids the value holds, renamed.
    fn hash_ids<H: Hasher>(&self, r: &Renaming, h: &mut H);
    /// The value with server ids renamed; None when the renaming changes nothing in it.
    fn renamed(&self, r: &Renaming) -> Option<Self>;
}

impl Symmetric for ServerState {
    fn hash_without_ids<H: Hasher>(&self, h: &mut H) {
        let ServerState {
            term,
            voted_for,
            log,
            snapshot,
            role,
            leader,
            commit_index,
            last_applied,
            kv,
            recovery,
        } = self;
        (term, log, snapshot, commit_index, last_applied, kv).hash(h);
        (voted_for.is_some(), leader.is_some()).hash(h);
        recovery
            .as_ref()
            .map(|r| (r.heard.count_ones(), r.floor, r.matched))
            .hash(h);
        match role {
            Role::Follower => 0u32.hash(h),
            Role::Candidate { votes } => (1, votes.count_ones()).hash(h),
            Role::Leader { match_index, .. } => {
                let mut m = match_index.clone();
                m.sort();
                (2, m).hash(h);
            }
        }
    }

    fn hash_ids<H: Hasher>(&self, r: &Renaming, h: &mut H) {
        let id = |x: u64| r.id(x);
        (self.voted_for.map(id), self.leader.map(id)).hash(h);
        self.recovery.as_ref().map(|x| r.votes(x.heard)).hash(h);
        match &self.role {
            Role::Follower => {}
            Role::Candidate { votes } => r.votes(*votes).hash(h),
            Role::Leader {
                next_index,
                match_index,
            } => {
                for (next, matched) in r.permuted(next_index).zip(r.permuted(match_index)) {
                    (next, matched).hash(h);
                }
            }
        }
    }

    fn renamed(&self, r: &Renaming) -> Option<Self> {
        let id = |x: u64| r.id(x);
        let unchanged = matches!(self.role, Role::Follower)
            && self.voted_for.map(id) == self.voted_for
            && self.leader.map(id) == self.leader
            && self
                .recovery
                .as_ref()
                .is_none_or(|x| r.votes(x.heard) == x.heard);
        if unchanged {
            return None;
        }
        let mut s = self.clone();
        if let Some(x) = &mut s.recovery {
            x.heard = r.votes(x.heard);
        }
        s.voted_for = s.voted_for.map(id);
        s.leader = s.leader.map(id);
        s.role = match &s.role {
            Role::Follower => Role::Follower,
            Role::Candidate { votes } => Role::Candidate {
                votes: r.votes(*votes),
            },
            Role::Leader {
                next_index,
                match_index,
            } => Role::Leader {
                next_index: r.permuted(next_index).collect(),
                match_index: r.permuted(match_index).collect(),
            },
        };
        Some(s)
    }
}

impl Symmetric for Storage {
    fn hash_without_ids<H: Hasher>(&self, h: &mut H) {
        let Storage {
            term,
            voted_for,
            log,
            snapshot,
            recovering,
            maybe_new,
        } = self;
        (term, log, snapshot, voted_for.is_some(), recovering).hash(h);
        if *maybe_new {
            maybe_new.hash(h); // Hashed only when set, as `Storage`'s own hash does.
        }
    }

    fn hash_ids<H: Hasher>(&self, r: &Renaming, h: &mut H) {
        self.voted_for.map(|x| r.id(x)).hash(h);
    }

    fn renamed(&self, r: &Renaming) -> Option<Self> {
        let voted_for = self.voted_for.map(|x| r.id(x));
        (voted_for != self.voted_for).then(|| Storage {
            voted_for,
            ..self.clone()
        })
    }
}

impl Msg {
    /// Whether the message names a server in its contents (not as sender or receiver).
    pub fn names_a_server(&self) -> bool {
        matches!(
            self,
            Msg::ClientResponse {
                reply: ClientReply::NotLeader { .. },
                ..
            }
        )
    }

    /// The message with the server ids in its contents renamed; None when it names none.
    pub fn renamed(&self, r: &Renaming) -> Option<Msg> {
        match self {
            Msg::ClientResponse {
                request_id,
                reply: ClientReply::NotLeader { leader },
            } => Some(Msg::ClientResponse {
                request_id: *request_id,
                reply: ClientReply::NotLeader {
                    leader: leader.map(|x| r.id(x)),
                },
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::server::Role;

    /// The checker reads servers through the view, not the state's own methods (which the
    /// compiler prefers when both are in scope): each role and field reads the same both ways.
    #[test]
    fn the_view_reads_each_role_and_field_as_the_state_does() {
        let mut s = ServerState::restore(None);
        let roles = [
            (Role::Follower, "follower", false),
            (Role::Candidate { votes: 1 }, "candidate", false),
            (
                Role::Leader {
                    next_index: vec![1; 3],
                    match_index: vec![0; 3],
                },
                "leader",
                true,
            ),
        ];
        for (role, name, leads) in roles {
            s.role = role;
            let view: &dyn ServerView = &s;
            assert_eq!(view.role_name(), name);
            assert_eq!(view.is_leader(), leads);
            assert_eq!((view.term(), view.commit_index()), (0, 0));
        }
        // And every other field reads through the view as it is.
        (s.term, s.voted_for, s.leader) = (3, Some(2), Some(1));
        (s.commit_index, s.last_applied) = (5, 4);
        let view: &dyn ServerView = &s;
        let read = (view.term(), view.voted_for(), view.leader());
        assert_eq!(read, (3, Some(2), Some(1)));
        assert_eq!((view.commit_index(), view.last_applied()), (5, 4));
        assert!(std::ptr::eq(view.log(), &s.log));
    }

    /// Of all messages only a client's NotLeader answer names a server in its contents (the
    /// leader it names), and renaming renames that server; every other message is left as is.
    #[test]
    fn only_a_not_leader_answer_names_a_server_and_renaming_renames_it() {
        let r = Renaming::new(&[2, 0, 1]);
        let not_leader = |leader| Msg::ClientResponse {
            request_id: 1,
            reply: ClientReply::NotLeader { leader },
        };
        assert!(not_leader(Some(0)).names_a_server());
        assert_eq!(not_leader(Some(0)).renamed(&r), Some(not_leader(Some(1))));
        let done = Msg::ClientResponse {
            request_id: 1,
            reply: ClientReply::Done(crate::protocol::types::OpResult::Written),
        };
        for other in [done, Msg::RecoveryQuery] {
            assert!(!other.names_a_server(), "{other:?}");
            assert_eq!(other.renamed(&r), None);
        }
    }

    /// A recovering follower names the peers it has heard from: renaming renames them, even
    /// when nothing else of it names a server.
    #[test]
    fn renaming_renames_the_peers_a_recovering_server_has_heard() {
        let mut s = ServerState::restore(Some(&Storage::wiped()));
        s.recovery.as_mut().expect("recovering").heard = 0b001;
        let swap = Renaming::new(&[1, 0, 2]);
        let renamed = s.renamed(&swap).expect("server 0 is now server 1");
        assert_eq!(renamed.recovery.map(|r| r.heard), Some(0b010));
        let keep = Renaming::new(&[0, 1, 2]);
        assert!(s.renamed(&keep).is_none(), "the identity renames nothing");
    }

    /// A stored vote names a server: the fingerprint hashes it renamed, so two disks that voted
    /// for different servers are told apart, and a renaming of one is the other.
    #[test]
    fn a_stored_vote_is_hashed_renamed() {
        let hash = |st: &Storage, order: &[usize]| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            st.hash_ids(&Renaming::new(order), &mut h);
            h.finish()
        };
        let voted = |v| Storage {
            voted_for: Some(v),
            ..Storage::wiped()
        };
        assert_ne!(hash(&voted(1), &[0, 1, 2]), hash(&voted(2), &[0, 1, 2]));
        assert_eq!(hash(&voted(1), &[0, 2, 1]), hash(&voted(2), &[0, 1, 2]));
    }
}
