//! A Merkle tree over one author's entry ids, so a single entry can be shown to belong to a log
//! without revealing the other entries.
//!
//! The tree is the one of RFC 9162 (Certificate Transparency v2) §2.1, with BLAKE3 in place of
//! SHA-256 and domain separation by key derivation context:
//!
//! ```text
//! leaf(id)        = BLAKE3-derive-key("candor v1 merkle leaf", id)
//! node(l, r)      = BLAKE3-derive-key("candor v1 merkle node", l || r)
//! root([])        = BLAKE3-derive-key("candor v1 merkle leaf", "")   (never used by a checkpoint)
//! root([x])       = leaf(x)
//! root(D[0..n])   = node(root(D[0..k]), root(D[k..n])), k the largest power of two < n
//! ```
//!
//! Leaf `i` is the id of the author's entry at seq `i`. A checkpoint at seq `n` carries the root
//! over seqs `0..n`; its partner recomputes it from the log it verified before acknowledging the
//! checkpoint in a signed header (see `docs/protocol.md`).
//!
//! [`Frontier`] grows the root one leaf at a time in O(log n) space, so a device keeps it per
//! log instead of rehashing history; [`inclusion_proof`] and [`verify_inclusion`] are RFC 9162's
//! audit paths.

use crate::EntryHash;
use serde::{Deserialize, Serialize};

/// Key derivation context of leaf hashes.
pub const LEAF_CONTEXT: &str = "candor v1 merkle leaf";
/// Key derivation context of interior node hashes.
pub const NODE_CONTEXT: &str = "candor v1 merkle node";
/// The longest audit path accepted: enough for 2^64 leaves.
pub const MAX_PROOF_LEN: usize = 64;

/// A hash in the tree: a leaf, an interior node or a root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TreeHash(pub [u8; 32]);

impl TreeHash {
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// The leaf hash of an entry id.
pub fn leaf(id: &EntryHash) -> TreeHash {
    let mut hasher = blake3::Hasher::new_derive_key(LEAF_CONTEXT);
    hasher.update(&id.0);
    TreeHash(*hasher.finalize().as_bytes())
}

/// The hash of an interior node.
pub fn node(left: &TreeHash, right: &TreeHash) -> TreeHash {
    let mut hasher = blake3::Hasher::new_derive_key(NODE_CONTEXT);
    hasher.update(&left.0);
    hasher.update(&right.0);
    TreeHash(*hasher.finalize().as_bytes())
}

/// The root of the empty tree.
pub fn empty_root() -> TreeHash {
    TreeHash(
        *blake3::Hasher::new_derive_key(LEAF_CONTEXT)
            .finalize()
            .as_bytes(),
    )
}

/// The root over `ids`, computed recursively (O(n)).
pub fn root(ids: &[EntryHash]) -> TreeHash {
    let leaves: Vec<TreeHash> = ids.iter().map(leaf).collect();
    subtree_root(&leaves)
}

fn subtree_root(leaves: &[TreeHash]) -> TreeHash {
    match leaves {
        [] => empty_root(),
        [single] => *single,
        _ => {
            let k = split_point(leaves.len());
            node(&subtree_root(&leaves[..k]), &subtree_root(&leaves[k..]))
        }
    }
}

/// The largest power of two strictly smaller than `n` (for `n >= 2`).
fn split_point(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The running root of a growing log: the roots of its perfect subtrees, largest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frontier {
    size: u64,
    peaks: Vec<TreeHash>,
}

impl Frontier {
    /// Number of leaves added so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds the next entry id.
    pub fn push(&mut self, id: &EntryHash) {
        let mut carry = leaf(id);
        // Each trailing one bit of the old size is a perfect subtree of equal size to merge with.
        let mut size = self.size;
        while size & 1 == 1 {
            if let Some(left) = self.peaks.pop() {
                carry = node(&left, &carry);
            }
            size >>= 1;
        }
        self.peaks.push(carry);
        self.size += 1;
    }

    /// The root over every id added so far.
    pub fn root(&self) -> TreeHash {
        let mut peaks = self.peaks.iter().rev();
        let Some(last) = peaks.next() else {
            return empty_root();
        };
        peaks.fold(*last, |acc, left| node(left, &acc))
    }

    /// Whether the frontier is internally consistent (one peak per set bit of its size); a
    /// frontier read back from disk is checked before use.
    pub fn is_well_formed(&self) -> bool {
        self.peaks.len() == self.size.count_ones() as usize
    }
}

/// The audit path proving that leaf `index` belongs to the tree over `ids` (RFC 9162 §2.1.3.1).
/// `None` if `index` is out of range.
pub fn inclusion_proof(ids: &[EntryHash], index: usize) -> Option<Vec<TreeHash>> {
    if index >= ids.len() {
        return None;
    }
    let leaves: Vec<TreeHash> = ids.iter().map(leaf).collect();
    let mut path = Vec::new();
    build_path(&leaves, index, &mut path);
    Some(path)
}

fn build_path(leaves: &[TreeHash], index: usize, path: &mut Vec<TreeHash>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split_point(leaves.len());
    if index < k {
        build_path(&leaves[..k], index, path);
        path.push(subtree_root(&leaves[k..]));
    } else {
        build_path(&leaves[k..], index - k, path);
        path.push(subtree_root(&leaves[..k]));
    }
}

/// Checks that `id` is leaf `index` of a tree of `size` leaves with root `root`, given its audit
/// path (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    id: &EntryHash,
    index: u64,
    size: u64,
    proof: &[TreeHash],
    root: &TreeHash,
) -> bool {
    if index >= size || proof.len() > MAX_PROOF_LEN {
        return false;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = leaf(id);
    for p in proof {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && r == *root
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(n: usize) -> Vec<EntryHash> {
        (0..n)
            .map(|i| EntryHash(*blake3::hash(&i.to_be_bytes()).as_bytes()))
            .collect()
    }

    #[test]
    fn small_trees_have_the_documented_shape() {
        let d = ids(3);
        assert_eq!(root(&d[..1]), leaf(&d[0]));
        assert_eq!(root(&d[..2]), node(&leaf(&d[0]), &leaf(&d[1])));
        assert_eq!(
            root(&d),
            node(&node(&leaf(&d[0]), &leaf(&d[1])), &leaf(&d[2]))
        );
        assert_eq!(root(&[]), empty_root());
    }

    #[test]
    fn leaves_and_nodes_are_domain_separated() {
        let d = ids(2);
        let mut joined = [0u8; 64];
        joined[..32].copy_from_slice(&leaf(&d[0]).0);
        joined[32..].copy_from_slice(&leaf(&d[1]).0);
        assert_ne!(
            node(&leaf(&d[0]), &leaf(&d[1])).0,
            *blake3::Hasher::new_derive_key(LEAF_CONTEXT)
                .update(&joined)
                .finalize()
                .as_bytes()
        );
    }

    #[test]
    fn out_of_range_or_overlong_proofs_fail() {
        let d = ids(5);
        let r = root(&d);
        assert!(inclusion_proof(&d, 5).is_none());
        let proof = inclusion_proof(&d, 4).unwrap();
        assert!(!verify_inclusion(&d[4], 5, 5, &proof, &r));
        assert!(!verify_inclusion(&d[4], 4, 4, &proof, &r));
        let long = vec![TreeHash([0; 32]); MAX_PROOF_LEN + 1];
        assert!(!verify_inclusion(&d[0], 0, 5, &long, &r));
    }

    proptest! {
        #[test]
        fn frontier_matches_the_recursive_root(n in 0usize..300) {
            let d = ids(n);
            let mut frontier = Frontier::default();
            for (i, id) in d.iter().enumerate() {
                prop_assert_eq!(frontier.root(), root(&d[..i]));
                frontier.push(id);
                prop_assert!(frontier.is_well_formed());
            }
            prop_assert_eq!(frontier.root(), root(&d));
            prop_assert_eq!(frontier.size(), n as u64);
        }

        #[test]
        fn every_leaf_proves_and_nothing_else_does(n in 1usize..200, pick in any::<prop::sample::Index>()) {
            let d = ids(n);
            let r = root(&d);
            let i = pick.index(n);
            let proof = inclusion_proof(&d, i).unwrap();
            prop_assert!(verify_inclusion(&d[i], i as u64, n as u64, &proof, &r));
            // The wrong id, position, size or root fails.
            let other = EntryHash([0xAB; 32]);
            prop_assert!(!verify_inclusion(&other, i as u64, n as u64, &proof, &r));
            if n > 1 {
                let j = (i + 1) % n;
                prop_assert!(!verify_inclusion(&d[i], j as u64, n as u64, &proof, &r));
            }
            prop_assert!(!verify_inclusion(&d[i], i as u64, n as u64, &proof, &TreeHash([7; 32])));
            // Any flipped byte in the path fails.
            if let Some(first) = proof.first() {
                let mut bad = proof.clone();
                let mut h = first.0;
                h[0] ^= 1;
                bad[0] = TreeHash(h);
                prop_assert!(!verify_inclusion(&d[i], i as u64, n as u64, &bad, &r));
            }
        }
    }
}
