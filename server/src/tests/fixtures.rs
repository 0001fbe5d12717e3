//! Devices, spaces and entries for tests, and a helper to log in through a `Relay`.

use candor_shared::entry::{Class, Draft, Entry, PartnerSeen};
use candor_shared::invite::InviteSecret;
use candor_shared::keys::{DeviceSecrets, SpaceKey, AUTH_SIGNATURE_PREFIX};
use candor_shared::payload::{kind, Payload, TextContent};
use candor_shared::relay::{Relay, RelayStore, Session};
use candor_shared::wire::{auth_message, MemberCard, Request, Response};
use candor_shared::{EntryHash, SpaceId};

pub fn device(n: u8) -> DeviceSecrets {
    DeviceSecrets::from_seeds([n + 1; 32], [n + 101; 32])
}

pub fn space(n: u8) -> SpaceId {
    SpaceId([n + 1; 16])
}

pub fn space_key(n: u8) -> SpaceKey {
    SpaceKey::from_bytes([n + 201; 32])
}

pub fn invite(n: u8) -> InviteSecret {
    InviteSecret([n + 151; 32])
}

/// A member card; the relay does not check the proof, so any bytes do.
pub fn card(d: &DeviceSecrets) -> MemberCard {
    MemberCard {
        public: d.public(),
        proof: [7; 32],
    }
}

pub fn create_space(d: &DeviceSecrets, n: u8) -> Request {
    let secret = invite(n);
    Request::CreateSpace {
        space: space(n),
        invite_verifier: secret.verifier(),
        sealed_space_key: secret.seal_space_key(&space(n), &space_key(n), [n; 24]),
        member: card(d),
    }
}

pub fn join(d: &DeviceSecrets, n: u8, good_token: bool) -> Request {
    Request::Join {
        space: space(n),
        token: if good_token {
            invite(n).token()
        } else {
            [0; 32]
        },
        member: card(d),
    }
}

/// A shared entry of `author` in space `n`; `variant` changes the text (for forks).
pub fn entry(author: &DeviceSecrets, n: u8, seq: u64, prev: EntryHash, variant: u8) -> Entry {
    let draft = Draft {
        class: Class::Shared,
        space: space(n),
        seq,
        prev,
        time_ms: 1_700_000_000_000 + seq,
        partner_seen: PartnerSeen::default(),
        nonce: [variant.wrapping_add(seq as u8); 24],
    };
    let payload = Payload::text(
        kind::NOTE,
        &TextContent {
            text: format!("entry {seq} variant {variant}"),
            replaces: None,
            original_time_ms: None,
            eta: None,
        },
    );
    Entry::seal(draft, &payload, &space_key(n), author).unwrap()
}

/// A chain of `len` entries of `author` in space `n`.
pub fn chain(author: &DeviceSecrets, n: u8, len: u64) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for seq in 0..len {
        let prev = out.last().map_or(EntryHash::ZERO, |e| e.hash);
        out.push(entry(author, n, seq, prev, 0));
    }
    out
}

/// The signature answering `nonce` on a connection with this exporter.
pub fn auth_signature(d: &DeviceSecrets, nonce: &[u8; 32], exporter: &[u8; 32]) -> Vec<u8> {
    d.sign(
        AUTH_SIGNATURE_PREFIX,
        &auth_message(nonce, exporter, &d.device_key()),
    )
    .to_vec()
}

/// An authenticated session of `d` on `relay`.
pub fn login<S: RelayStore>(relay: &Relay<S>, d: &DeviceSecrets) -> Session {
    let exporter = [42; 32];
    let mut session = Session::new(exporter);
    let Response::Challenge { nonce } = relay
        .handle_request(&mut session, Request::Hello { version: 1 }, [3; 32])
        .response
    else {
        panic!("expected a challenge");
    };
    let handled = relay.handle_request(
        &mut session,
        Request::Authenticate {
            device: d.device_key(),
            signature: auth_signature(d, &nonce, &exporter),
        },
        [0; 32],
    );
    assert!(
        matches!(handled.response, Response::Authenticated { .. }),
        "{:?}",
        handled.response
    );
    session
}
