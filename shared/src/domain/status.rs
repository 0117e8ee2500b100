//! The statuses of CONTRACT §2 and the legal moves between them. Every change of status
//! anywhere in the hub goes through [`Status::can_move_to`].

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Submitted,
    AwaitingEvidence,
    Routed,
    InProgress,
    Responded,
    Resolved,
    Unresolved,
    Rejected,
    Withdrawn,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::Submitted,
        Status::AwaitingEvidence,
        Status::Routed,
        Status::InProgress,
        Status::Responded,
        Status::Resolved,
        Status::Unresolved,
        Status::Rejected,
        Status::Withdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Submitted => "submitted",
            Status::AwaitingEvidence => "awaiting_evidence",
            Status::Routed => "routed",
            Status::InProgress => "in_progress",
            Status::Responded => "responded",
            Status::Resolved => "resolved",
            Status::Unresolved => "unresolved",
            Status::Rejected => "rejected",
            Status::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(raw: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Resolved | Status::Unresolved | Status::Rejected | Status::Withdrawn
        )
    }

    /// Whether the status machine allows `self → next`. `Routed → Routed` is an escalation
    /// to the next rung.
    pub fn can_move_to(self, next: Status) -> bool {
        use Status::*;
        if self.is_final() {
            return false;
        }
        matches!(
            (self, next),
            (_, Withdrawn)
                | (Submitted, AwaitingEvidence | Routed | Rejected)
                | (AwaitingEvidence, Routed | Rejected)
                | (
                    Routed,
                    Routed | InProgress | Responded | Resolved | Unresolved | Rejected
                )
                | (
                    InProgress,
                    Routed | Responded | Resolved | Unresolved | Rejected
                )
                | (Responded, Routed | Resolved | Unresolved)
        )
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_name() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn a_final_status_never_moves() {
        for from in Status::ALL.into_iter().filter(|s| s.is_final()) {
            for to in Status::ALL {
                assert!(!from.can_move_to(to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn a_submitted_case_cannot_be_resolved_before_it_is_routed() {
        assert!(!Status::Submitted.can_move_to(Status::Resolved));
        assert!(Status::Submitted.can_move_to(Status::Routed));
    }
}
