//! The test vectors published in docs/protocol.md, recomputed from the code.
//!
//! Every `name: value` line in the doc's "Test vectors" block must match what this build
//! computes, so the published layout and the implementation cannot drift apart.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use candor_shared::entry::{Class, Draft, Entry, PartnerSeen};
use candor_shared::invite::{member_proof, InviteSecret};
use candor_shared::keys::{safety_number, DeviceSecrets, SpaceKey};
use candor_shared::merkle;
use candor_shared::payload::{kind, Checkpoint, Payload, TextContent};
use candor_shared::{EntryHash, SpaceId};

fn computed() -> Vec<(&'static str, String)> {
    let alice = DeviceSecrets::from_seeds([0x01; 32], [0x02; 32]);
    let bob = DeviceSecrets::from_seeds([0x11; 32], [0x12; 32]);
    let space = SpaceId([0x04; 16]);
    let key = SpaceKey::from_bytes([0x03; 32]);
    let payload = Payload::text(
        kind::NOTE,
        &TextContent {
            text: "hello".into(),
            replaces: None,
            original_time_ms: None,
            eta: None,
        },
    );
    let entry0 = Entry::seal(
        Draft {
            class: Class::Shared,
            space,
            seq: 0,
            prev: EntryHash::ZERO,
            time_ms: 1_700_000_000_000,
            partner_seen: PartnerSeen::default(),
            nonce: [0x05; 24],
        },
        &payload,
        &key,
        &alice,
    )
    .expect("seal");
    let entry1 = Entry::seal(
        Draft {
            class: Class::Shared,
            space,
            seq: 1,
            prev: entry0.hash,
            time_ms: 1_700_000_000_001,
            partner_seen: PartnerSeen {
                count: 3,
                head: EntryHash([0x09; 32]),
            },
            nonce: [0x06; 24],
        },
        &payload,
        &key,
        &alice,
    )
    .expect("seal");
    let secret = InviteSecret([0x07; 32]);
    let three = [entry0.hash, entry1.hash, EntryHash([0x09; 32])];
    let checkpoint = Payload::checkpoint(&Checkpoint {
        own_root: merkle::root(&three[..2]),
        countersign: true,
    });
    vec![
        ("alice_device_key", alice.public().device.to_hex()),
        ("alice_exchange_key", hex::encode(alice.public().exchange)),
        ("bob_device_key", bob.public().device.to_hex()),
        ("bob_exchange_key", hex::encode(bob.public().exchange)),
        (
            "padded_plaintext_prefix",
            hex::encode(&payload.to_padded().expect("pad")[..16]),
        ),
        ("entry0_header", hex::encode(entry0.header.encode())),
        ("entry0_signature", hex::encode(entry0.signature)),
        ("entry0_ciphertext", hex::encode(&entry0.ciphertext)),
        ("entry0_hash", entry0.hash.to_hex()),
        ("entry1_header", hex::encode(entry1.header.encode())),
        ("entry1_hash", entry1.hash.to_hex()),
        (
            "safety_number",
            safety_number(&space, &alice.public(), &bob.public()),
        ),
        ("invite_token", hex::encode(secret.token())),
        ("invite_verifier", hex::encode(secret.verifier())),
        (
            "member_proof",
            hex::encode(member_proof(&key, &space, &alice.public())),
        ),
        (
            "join_proof",
            hex::encode(secret.join_proof(&space, &bob.public())),
        ),
        ("merkle_root_2", merkle::root(&three[..2]).to_hex()),
        ("merkle_root_3", merkle::root(&three).to_hex()),
        (
            "merkle_path_3_leaf_1",
            merkle::inclusion_proof(&three, 1)
                .expect("in range")
                .iter()
                .map(merkle::TreeHash::to_hex)
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("checkpoint_content", hex::encode(&checkpoint.content)),
        ("text_content_hello", hex::encode(&payload.content)),
        (
            "refused_text_content_trailing",
            format!("{}00", hex::encode(&payload.content)),
        ),
    ]
}

/// The lines of the fenced block that follows the "## Test vectors" heading.
fn published_block(doc: &str) -> Vec<&str> {
    let section = doc
        .split_once("\n## Test vectors\n")
        .map(|(_, rest)| rest)
        .expect("docs/protocol.md has a Test vectors section");
    let block = section
        .split_once("```text\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .map(|(block, _)| block)
        .expect("the Test vectors section has a ```text block");
    block.lines().collect()
}

#[test]
fn docs_protocol_md_vectors_match_the_code() {
    let doc = include_str!("../../docs/protocol.md");
    let expected: Vec<String> = computed()
        .into_iter()
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    assert_eq!(
        published_block(doc),
        expected,
        "docs/protocol.md's test-vector block must be exactly these lines:\n{}",
        expected.join("\n")
    );
}

#[test]
fn the_published_content_with_a_trailing_byte_is_refused() {
    let doc = include_str!("../../docs/protocol.md");
    let field = |name: &str| {
        published_block(doc)
            .into_iter()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
            .unwrap_or_default()
    };
    let good = Payload {
        kind: kind::NOTE,
        content: hex::decode(field("text_content_hello")).expect("hex"),
    };
    assert!(good.content().is_ok());
    let refused = Payload {
        kind: kind::NOTE,
        content: hex::decode(field("refused_text_content_trailing")).expect("hex"),
    };
    assert_eq!(
        refused.content(),
        Err(candor_shared::payload::PayloadError::Trailing(1))
    );
}

#[test]
fn vector_entries_verify_and_open() {
    let key = SpaceKey::from_bytes([0x03; 32]);
    let doc = include_str!("../../docs/protocol.md");
    let field = |name: &str| {
        doc.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(&format!("{name}: "))
                    .map(str::to_string)
            })
            .unwrap_or_default()
    };
    let bytes = hex::decode(format!(
        "{}{}{}",
        field("entry0_header"),
        field("entry0_signature"),
        field("entry0_ciphertext")
    ))
    .expect("hex");
    let entry = Entry::from_bytes(&bytes).expect("the published entry verifies");
    assert_eq!(entry.hash.to_hex(), field("entry0_hash"));
    assert_eq!(entry.open(&key).expect("opens").kind, kind::NOTE);
}
