//! `candor space create | join | safety-number | show`: pairing two partners' devices.

use super::{random, Ctx};
use crate::net::RelayClient;
use crate::output::Output;
use crate::store::SpaceConfig;
use anyhow::{anyhow, bail, Context as _, Result};
use candor_shared::entry::Class;
use candor_shared::invite::{
    member_proof, verify_member_proof, Invite, InviteSecret, RelayFingerprint,
};
use candor_shared::keys::{safety_number as compute_safety_number, SpaceKey};
use candor_shared::payload::{Hello, Payload};
use candor_shared::wire::{MemberCard, Request, Response};
use candor_shared::SpaceId;

fn refuse_if_paired(ctx: &Ctx) -> Result<()> {
    if let Some(config) = ctx.store.space_config()? {
        bail!(
            "this device is already in space {} (relay {}); nothing changed",
            config.space.short(),
            config.relay
        );
    }
    Ok(())
}

/// Writes this device's introduction as the first entry of its log.
fn write_hello(
    ctx: &Ctx,
    space: &SpaceId,
    key: &SpaceKey,
    partner: Option<&candor_shared::DeviceKey>,
) -> Result<()> {
    let identity = ctx.identity()?;
    let hello = Payload::hello(&Hello {
        name: identity.name.clone(),
        exchange: identity.secrets.public().exchange,
    });
    // Draw the nonce first: nothing is sealed unless randomness is available.
    let nonce = random::<24>()?;
    ctx.store.append_own(
        &crate::store::LogWriter {
            author: &identity.secrets,
            space,
            key,
            partner,
        },
        vec![(Class::Control, hello)],
        crate::timefmt::now_ms(),
        || Ok(nonce),
    )?;
    Ok(())
}

/// Sends the introduction entry right away, so the partner learns this device's name on their
/// next sync. Failure is not fatal: the entry is stored and goes out with the next sync.
async fn push_hello(ctx: &Ctx, out: &mut Output) {
    let result = match ctx.paired() {
        Ok(paired) => crate::syncer::sync_once(&ctx.store, &paired)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        out.note(format!(
            "note: could not sync yet ({e:#}); run `candor sync` later"
        ));
    }
}

/// `candor space create`: registers a new space at the relay and prints the invite last.
pub async fn create_space(
    ctx: &Ctx,
    relay: &str,
    fingerprint: &str,
    out: &mut Output,
) -> Result<()> {
    refuse_if_paired(ctx)?;
    let identity = ctx.identity()?;
    let fingerprint = RelayFingerprint::parse(fingerprint)?;
    let space = SpaceId(random()?);
    let key = SpaceKey::from_bytes(random()?);
    let secret = InviteSecret(random()?);
    let public = identity.secrets.public();
    let (client, _) = RelayClient::connect(relay, &fingerprint, &identity.secrets)
        .await
        .with_context(|| format!("could not reach the relay at {relay}"))?;
    let response = client
        .request(&Request::CreateSpace {
            space,
            invite_verifier: secret.verifier(),
            sealed_space_key: secret.seal_space_key(&space, &key, random()?),
            member: MemberCard {
                public,
                proof: member_proof(&key, &space, &public),
            },
        })
        .await
        .context("the relay refused to create the space")?;
    if response != Response::SpaceCreated {
        bail!("the relay answered CreateSpace with something unexpected");
    }
    client.close().await;
    ctx.home.write_space_key(&space, &key, Some(&secret))?;
    ctx.store.set_space_config(&SpaceConfig {
        space,
        relay: relay.to_string(),
        fingerprint,
        creator: true,
        partner: None,
    })?;
    write_hello(ctx, &space, &key, None)?;
    push_hello(ctx, out).await;
    let invite = Invite {
        relay: relay.to_string(),
        relay_fingerprint: fingerprint,
        space,
        secret,
        creator: public,
    };
    out.line(format!("Created space {} on relay {relay}.", space.short()));
    out.line("Give your partner this invite in person or over a channel you trust. It works once;");
    out.line("they run: candor space join INVITE");
    out.line(
        "Then both of you run `candor space safety-number` and compare the numbers in person.",
    );
    out.line(invite.to_line());
    Ok(())
}

/// `candor space join`: redeems an invite at the relay and records the space.
pub async fn join_space(ctx: &Ctx, invite: &str, out: &mut Output) -> Result<()> {
    let invite = Invite::parse(invite).context("that invite cannot be used")?;
    refuse_if_paired(ctx)?;
    let identity = ctx.identity()?;
    let public = identity.secrets.public();
    if public.device == invite.creator.device {
        bail!("this invite was created by this very device; give it to your partner");
    }
    let (client, _) =
        RelayClient::connect(&invite.relay, &invite.relay_fingerprint, &identity.secrets)
            .await
            .with_context(|| format!("could not reach the relay at {}", invite.relay))?;
    let response = client
        .request(&Request::Join {
            space: invite.space,
            token: invite.secret.token(),
            member: MemberCard {
                public,
                proof: invite.secret.join_proof(&invite.space, &public),
            },
        })
        .await
        .context("the relay refused the invite")?;
    let Response::Joined {
        sealed_space_key,
        members,
    } = response
    else {
        bail!("the relay answered Join with something unexpected");
    };
    client.close().await;
    let key = invite
        .secret
        .open_space_key(&invite.space, &sealed_space_key)
        .context("joining failed")?;
    let creator = members
        .iter()
        .find(|m| m.public.device == invite.creator.device)
        .ok_or_else(|| {
            anyhow!("the relay's member list does not contain the device that made the invite")
        })?;
    if creator.public != invite.creator
        || !verify_member_proof(&key, &invite.space, &invite.creator, &creator.proof)
    {
        bail!("the relay presented keys for your partner that differ from the invite; refusing to join");
    }
    ctx.home.write_space_key(&invite.space, &key, None)?;
    ctx.store.set_space_config(&SpaceConfig {
        space: invite.space,
        relay: invite.relay.clone(),
        fingerprint: invite.relay_fingerprint,
        creator: false,
        partner: Some(invite.creator),
    })?;
    write_hello(ctx, &invite.space, &key, Some(&invite.creator.device))?;
    push_hello(ctx, out).await;
    out.line(format!(
        "Joined space {} on relay {}.",
        invite.space.short(),
        invite.relay
    ));
    out.line("Run `candor sync` to exchange entries, and compare `candor space safety-number` with your partner in person.");
    Ok(())
}

/// The creator's invite line, rebuilt from the space configuration and the kept secret.
fn invite_line(ctx: &Ctx) -> Result<String> {
    let paired = ctx.paired()?;
    let secret = paired
        .invite_secret
        .clone()
        .ok_or_else(|| anyhow!("only the device that created the space holds its invite"))?;
    Ok(Invite {
        relay: paired.config.relay.clone(),
        relay_fingerprint: paired.config.fingerprint,
        space: paired.config.space,
        secret,
        creator: paired.identity.secrets.public(),
    }
    .to_line())
}

/// `candor space invite`: prints the invite again until the partner has joined.
pub fn invite(ctx: &Ctx, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    if paired.config.partner.is_some() {
        bail!("your partner has already joined with the invite; it works only once");
    }
    out.line(invite_line(ctx)?);
    Ok(())
}

/// `candor space safety-number`.
pub fn safety_number(ctx: &Ctx, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let partner = paired.config.partner.ok_or_else(|| {
        anyhow!("your partner's device is not known yet: once they have joined, run `candor sync`")
    })?;
    out.line(compute_safety_number(
        &paired.config.space,
        &paired.identity.secrets.public(),
        &partner,
    ));
    Ok(())
}

/// `candor space relay HOST:PORT`: the same relay (same certificate, same space) at another
/// address. Checked by connecting before anything is saved.
pub async fn move_relay(ctx: &Ctx, relay: &str, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let mut config = paired.config.clone();
    let (client, spaces) =
        RelayClient::connect(relay, &config.fingerprint, &paired.identity.secrets)
            .await
            .with_context(|| {
                format!(
                    "could not reach the relay at {relay} with fingerprint {}",
                    config.fingerprint
                )
            })?;
    client.close().await;
    if !spaces.contains(&config.space) {
        bail!(
            "the relay at {relay} presents the right certificate but does not hold space {}: it \
             is not the same relay (its processes must share one database)",
            config.space.short()
        );
    }
    let old = std::mem::replace(&mut config.relay, relay.to_string());
    ctx.store.set_space_config(&config)?;
    out.line(format!(
        "Relay address changed from {old} to {relay} (fingerprint {} unchanged).",
        config.fingerprint
    ));
    Ok(())
}

/// `candor space show`.
pub fn show(ctx: &Ctx, json: bool, out: &mut Output) -> Result<()> {
    let paired = ctx.paired()?;
    let me = paired.identity.secrets.device_key();
    let partner_name = super::log::partner_name(ctx, &paired)?;
    let left = super::ledger::current(ctx, &paired)?
        .departures
        .into_iter()
        .find(|d| d.author != me);
    if json {
        out.line(serde_json::to_string_pretty(&serde_json::json!({
            "space": paired.config.space.to_hex(),
            "relay": paired.config.relay,
            "relay_fingerprint": paired.config.fingerprint.to_string(),
            "device": me.to_hex(),
            "name": paired.identity.name,
            "partner_device": paired.config.partner.map(|p| p.device.to_hex()),
            "partner_name": partner_name,
            "partner_left": left.as_ref().map(|d| serde_json::json!({
                "time": crate::timefmt::rfc3339(d.time_ms),
                "note": d.note,
            })),
        }))?);
    } else {
        out.line(format!("space     {}", paired.config.space));
        out.line(format!(
            "relay     {} ({})",
            paired.config.relay, paired.config.fingerprint
        ));
        out.line(format!("device    {} ({})", me, paired.identity.name));
        match paired.config.partner {
            Some(p) => out.line(format!(
                "partner   {} ({})",
                p.device,
                partner_name
                    .map(|n| super::log::printable(&n))
                    .unwrap_or_else(|| "name not received yet".into())
            )),
            None => out.line("partner   not joined yet (run `candor sync` after they join)"),
        }
        if let Some(d) = &left {
            out.line(format!(
                "left      your partner left the space on {}{}",
                crate::timefmt::short(d.time_ms),
                d.note
                    .as_ref()
                    .map(|n| format!(": {}", super::log::printable(n)))
                    .unwrap_or_default()
            ));
        }
    }
    Ok(())
}
