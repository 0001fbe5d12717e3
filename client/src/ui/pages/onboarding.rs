//! First run, unlocking, pairing (invite as text and QR code, or joining), and the safety
//! number both partners compare in person.

use super::{page, Chrome, Screen};
use crate::ui::views::Pairing;
use maud::{html, Markup, PreEscaped};

/// First run: name and optional passphrase.
pub fn welcome(chrome: &Chrome) -> Markup {
    let body = html! {
        p.lead { "Candor keeps an honest, private record for the two of you. Everything stays encrypted on your own devices." }
        (chrome.form("/welcome", "stack", html! {
            label for="name" { "Your name" }
            p.hint #name-hint { "Your partner sees it next to what you write." }
            input #name type="text" name="name" required maxlength="64" autocomplete="given-name" aria-describedby="name-hint";
            fieldset {
                legend { "Passphrase (optional, recommended on a shared computer)" }
                p.hint #pass-hint { "It protects what Candor keeps on this computer. If you forget it, nobody can recover your data: write it down somewhere safe. Several unrelated words make a strong one." }
                label for="passphrase" { "Passphrase" }
                input #passphrase type="password" name="passphrase" autocomplete="new-password" aria-describedby="pass-hint strength" data-strength="strength";
                p.hint #strength aria-live="polite" { "Leave both fields empty to go without one." }
                label for="passphrase_again" { "The same passphrase again" }
                input #passphrase_again type="password" name="passphrase_again" autocomplete="new-password";
            }
            button type="submit" { "Start" }
        }))
        details #restore {
            summary { "I have a recovery bundle from my old device" }
            p { "Restore everything your old device had: your name, your space and both your records. Then stop using the old device." }
            (chrome.form("/welcome/restore", "stack", html! {
                label for="bundle-file" { "The bundle file (full path)" }
                input #bundle-file type="text" name="path" required placeholder="/home/you/candor-recovery.bundle";
                label for="bundle-passphrase" { "The bundle's passphrase" }
                input #bundle-passphrase type="password" name="passphrase" required autocomplete="off";
                label for="device-passphrase" { "A passphrase for this device (optional)" }
                input #device-passphrase type="password" name="device_passphrase" autocomplete="new-password";
                button type="submit" { "Restore" }
            }))
        }
    };
    page(chrome, Screen::Setup, "Welcome to Candor", body)
}

/// The passphrase screen.
pub fn unlock(chrome: &Chrome) -> Markup {
    let body = html! {
        p { "Your data on this device is protected by a passphrase. It stays unlocked only while this window of Candor runs." }
        (chrome.form("/unlock", "stack", html! {
            label for="passphrase" { "Passphrase" }
            input #passphrase type="password" name="passphrase" required autocomplete="current-password" autofocus;
            button type="submit" { "Unlock" }
        }))
    };
    page(chrome, Screen::Setup, "Unlock Candor", body)
}

/// Create a space or join one; or, once created, the invite to hand over.
pub fn pair(chrome: &Chrome, pairing: &Pairing) -> Markup {
    let body = match pairing {
        Pairing::WaitingForPartner { invite } => invite_screen(invite),
        _ => html! {
            p.lead { "To share with your partner, one of you creates a space and the other joins it with an invite. Your private journal works already: " a href="/journal" { "open your journal" } "." }
            div.columns {
                section aria-labelledby="create-title" {
                    h2 #create-title { "Create our space" }
                    p { "You need a Candor relay: a small server one of you (or a friend) runs. It only ever sees locked, unreadable data." }
                    (chrome.form("/pair/create", "stack", html! {
                        label for="relay" { "Relay address" }
                        p.hint #relay-hint { "Host and port, for example 127.0.0.1:4433 for a relay on this computer." }
                        input #relay type="text" name="relay" required value="127.0.0.1:4433" aria-describedby="relay-hint";
                        label for="fingerprint" { "Relay fingerprint" }
                        p.hint #fp-hint { "The line starting with sha256: that the relay printed when it started." }
                        input #fingerprint type="text" name="fingerprint" required placeholder="sha256:…" aria-describedby="fp-hint" autocomplete="off" spellcheck="false";
                        button type="submit" { "Create our space" }
                    }))
                }
                section aria-labelledby="join-title" {
                    h2 #join-title { "Join my partner's space" }
                    p { "Your partner created the space and has an invite for you: paste or type it here." }
                    (chrome.form("/pair/join", "stack", html! {
                        label for="invite" { "Invite" }
                        textarea #invite name="invite" rows="4" required autocomplete="off" spellcheck="false" {}
                        button type="submit" { "Join" }
                    }))
                }
            }
        },
    };
    page(chrome, Screen::Setup, "Connect with your partner", body)
}

fn invite_screen(invite: &str) -> Markup {
    html! {
        div #invite-wait data-live data-reload {}
        p.lead { "Give your partner this invite, in person or over a channel you trust. It works once." }
        div.columns {
            figure.qr {
                div role="img" aria-label="QR code of the invite" { (PreEscaped(qr_svg(invite))) }
                figcaption { "Your partner can scan this with their phone's camera to copy the invite." }
            }
            div {
                label for="invite-text" { "The invite as text" }
                textarea #invite-text readonly rows="6" spellcheck="false" { (invite) }
                p.hint { "On their device they choose " strong { "Join my partner's space" } " and paste it." }
                p { "This page moves on by itself once your partner has joined." }
                p { a href="/pair" { "Check again" } }
            }
        }
    }
}

/// The invite as an SVG QR code (the `qrcode` crate's renderer; no user markup in it).
fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(240, 240)
                .quiet_zone(true)
                .build();
            match svg.find("<svg") {
                Some(start) => svg[start..].to_string(),
                None => svg,
            }
        }
        Err(_) => String::new(),
    }
}

/// The safety number.
pub fn safety(chrome: &Chrome, number: Option<&str>, pairing: &Pairing) -> Markup {
    let partner = super::super::routes::partner_name(pairing);
    let body = html! {
        @match number {
            Some(number) => {
                p.lead { "Sit together and compare this number with the one on " (partner) "'s screen. If every digit matches, nobody stands between you." }
                p.safety-number aria-label="Safety number" { (grouped(number)) }
                p { "If the numbers differ, stop and do not write anything private: someone may be in the middle. Create a new space together." }
                p { a.button href="/today" { "The numbers match: go to Today" } }
            }
            None => {
                p { "Your partner has not joined yet. Once they have, the number appears here." }
            }
        }
    };
    page(chrome, Screen::Setup, "Compare your safety number", body)
}

/// The safety number in groups of five digits, as people read it aloud.
pub fn grouped(number: &str) -> String {
    let digits: Vec<char> = number.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() {
        return number.to_string();
    }
    digits
        .chunks(5)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safety_numbers_are_grouped_by_five() {
        assert_eq!(grouped("12345 67890 12"), "12345 67890 12");
        assert_eq!(grouped("1234567890"), "12345 67890");
    }

    #[test]
    fn the_qr_code_is_an_svg_element() {
        let svg = qr_svg("candor1:example");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(!svg.contains("style="));
    }
}
