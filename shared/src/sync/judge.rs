//! The device's verdicts that follow from what its store refused or holds: what to do about a
//! refused pulled entry (pull again, or stop and keep evidence, freezing the log of an author
//! who signed against itself), and whether its own log owes the partner a checkpoint.
//!
//! Pure functions: the store judges each entry (chain, checkpoint roots, adopt-own — see
//! [`super::verify_prechecked`]) and reports the first refusal as a [`Refusal`]; these decide
//! what follows, so the simulation and the client make the same decisions.

use super::IncomingError;
use crate::chain::ChainError;
use crate::DeviceKey;

/// Why the store refused a pulled entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its author's log is frozen (it holds proof of equivocation or a false checkpoint).
    Frozen,
    /// It skips ahead of its author's log.
    Gap,
    /// Its author signed a different entry at the same seq.
    Equivocation,
    /// It is a checkpoint whose Merkle root is not that of the log this device verified.
    FalseCheckpoint,
    /// Anything else (damaged, forged, a stranger's, undecryptable, a chain mismatch).
    Other,
}

impl Refusal {
    /// The refusal an [`IncomingError`] stands for.
    pub fn of(error: &IncomingError) -> Self {
        match error {
            IncomingError::Chain(ChainError::Gap { .. }) => Self::Gap,
            IncomingError::Equivocation { .. } => Self::Equivocation,
            IncomingError::FalseCheckpoint { .. } => Self::FalseCheckpoint,
            _ => Self::Other,
        }
    }
}

/// What follows from a refused pulled entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// With an honest relay a gap means its cursors changed under this device: pull everything
    /// once more (if that was already tried, the gap is real and is judged as evidence).
    RestartPull,
    /// Stop the sync. Nothing new is kept: the author's log is frozen already.
    Stop,
    /// Stop the sync and keep the entry as evidence.
    Evidence(EvidencePlan),
}

/// How to keep a refused entry as evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidencePlan {
    /// The refused entry, in wire form.
    pub entry: Vec<u8>,
    /// The entry this device holds at the same (author, seq), kept beside it: the two
    /// signatures together are the proof.
    pub with_held: Option<(DeviceKey, u64)>,
    /// The author whose log is frozen from now on.
    pub freeze: Option<DeviceKey>,
}

/// Decides what follows from the refusal of `entry`; `may_restart` says whether a full re-pull
/// is still allowed (see [`super::SyncMachine::restart_pull`]).
pub fn judge_refusal(refusal: Refusal, entry: &[u8], may_restart: bool) -> Judgement {
    let author_seq = crate::entry::peek_author_seq(entry);
    match refusal {
        Refusal::Frozen => Judgement::Stop,
        Refusal::Gap if may_restart => Judgement::RestartPull,
        // Two valid signatures at one (author, seq) prove the author forked their log.
        Refusal::Equivocation => Judgement::Evidence(EvidencePlan {
            entry: entry.to_vec(),
            with_held: author_seq,
            freeze: author_seq.map(|(author, _)| author),
        }),
        // A false checkpoint is signed proof that its author vouched for another history.
        Refusal::FalseCheckpoint => Judgement::Evidence(EvidencePlan {
            entry: entry.to_vec(),
            with_held: None,
            freeze: author_seq.map(|(author, _)| author),
        }),
        Refusal::Gap | Refusal::Other => Judgement::Evidence(EvidencePlan {
            entry: entry.to_vec(),
            with_held: None,
            freeze: None,
        }),
    }
}

/// A partner entry stored after the last one this device's log acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartnerEntry {
    /// A control entry (an introduction or checkpoint), not something the partner wrote.
    pub control: bool,
    /// A checkpoint that asks this device to countersign it.
    pub asks_countersign: bool,
}

/// Whether this device's log owes the partner a checkpoint: it verified partner entries its own
/// log does not yet say it has seen. Only what the partner wrote (not their own checkpoints)
/// calls for one, unless a checkpoint asks to be countersigned — otherwise two devices would
/// answer each other's checkpoints for ever. `unacknowledged` is read lazily, up to the first
/// entry that decides.
pub fn checkpoint_due<E>(
    partner_known: bool,
    left: bool,
    unacknowledged: impl IntoIterator<Item = Result<PartnerEntry, E>>,
) -> Result<bool, E> {
    if !partner_known || left {
        return Ok(false);
    }
    for entry in unacknowledged {
        let entry = entry?;
        if !entry.control || entry.asks_countersign {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    fn entries(list: &[(bool, bool)]) -> Vec<Result<PartnerEntry, Infallible>> {
        list.iter()
            .map(|&(control, asks_countersign)| {
                Ok(PartnerEntry {
                    control,
                    asks_countersign,
                })
            })
            .collect()
    }

    #[test]
    fn a_checkpoint_is_due_for_partner_writing_or_a_countersign_request_only() {
        let due = |list: &[(bool, bool)]| checkpoint_due(true, false, entries(list)).unwrap();
        assert!(!due(&[]));
        assert!(!due(&[(true, false), (true, false)]), "checkpoints alone");
        assert!(due(&[(true, false), (false, false)]));
        assert!(due(&[(true, true)]), "a countersign request");
        assert!(!checkpoint_due(false, false, entries(&[(false, false)])).unwrap());
        assert!(!checkpoint_due(true, true, entries(&[(false, false)])).unwrap());
    }

    #[test]
    fn refusals_lead_to_restart_evidence_or_freeze() {
        let bytes = vec![0u8; 8]; // too short to name an author
        assert_eq!(
            judge_refusal(Refusal::Gap, &bytes, true),
            Judgement::RestartPull
        );
        let plain = Judgement::Evidence(EvidencePlan {
            entry: bytes.clone(),
            with_held: None,
            freeze: None,
        });
        assert_eq!(judge_refusal(Refusal::Gap, &bytes, false), plain);
        assert_eq!(judge_refusal(Refusal::Other, &bytes, true), plain);
        assert_eq!(
            judge_refusal(Refusal::Frozen, &bytes, true),
            Judgement::Stop
        );
    }
}
