//! Safety and settings: safety number, space fingerprint, relay, verification in plain words,
//! passphrase, recovery bundle, journal backup, leaving the space.

use super::onboarding::grouped;
use super::{Chrome, Screen};
use crate::ui::views::{Settings, Verified};
use maud::{html, Markup};

/// The settings screen (with the result of a verification, if one was just run).
pub fn page_of(chrome: &Chrome, s: &Settings, verified: Option<&Verified>) -> Markup {
    html! {
        section aria-labelledby="safety-title" {
            h2 #safety-title { "Safety" }
            @match &s.safety_number {
                Some(number) => {
                    p { "Your safety number. Compare it with your partner's in person: every digit must match." }
                    p.safety-number { (grouped(number)) }
                }
                None => { p { "The safety number appears once your partner has joined." } }
            }
            @if let Some(fp) = &s.fingerprint {
                p { "Space fingerprint: " code { (fp) } }
            }
            @if let Some(space) = &s.space {
                p { "Candor stays connected to your relay while this window runs. What you write is kept here at once and sent whenever the relay can be reached; nothing is lost while it cannot." }
                details {
                    summary { "Relay details" }
                    p { "Address " code { (space.relay) } }
                    p { "Fingerprint " code { (space.relay_fingerprint) } }
                }
            }
            @if s.space.is_some() {
                p { a.button href="/settings/verify" { "Check our record" } }
            }
            @if let Some(v) = verified {
                @if v.ok {
                    p.flash.ok role="status" { "Everything checks out: every entry of both of you is signed, in order, and unchanged." }
                } @else {
                    div.flash.error role="alert" {
                        p { "Something is wrong with the record. Talk with your partner before writing anything private." }
                        ul { @for line in &v.lines { li { (line) } } }
                    }
                }
            }
        }
        section aria-labelledby="pass-title" {
            h2 #pass-title { "Passphrase" }
            p { @if s.passphrase_set { "A passphrase protects your data on this device." } @else { "No passphrase: anyone who can read this computer's disk can read your data." } }
            (chrome.form("/settings/passphrase", "stack", html! {
                @if s.passphrase_set {
                    label for="current" { "Current passphrase" }
                    input #current type="password" name="current" required autocomplete="current-password";
                }
                label for="new" { "New passphrase" }
                input #new type="password" name="new" autocomplete="new-password" data-strength="new-strength" aria-describedby="new-strength";
                p.hint #new-strength aria-live="polite" { "Several unrelated words make a strong passphrase." }
                label for="again" { "The new passphrase again" }
                input #again type="password" name="again" autocomplete="new-password";
                button type="submit" { "Save passphrase" }
                @if s.passphrase_set {
                    button.quiet type="submit" name="remove" value="on" formnovalidate { "Remove the passphrase" }
                }
            }))
        }
        section aria-labelledby="bundle-title" {
            h2 #bundle-title { "Recovery bundle" }
            p { "A locked copy of everything on this device, to restore it if the device is lost. Keep the file and its passphrase apart." }
            (chrome.form("/settings/bundle", "stack", html! {
                label for="bundle-path" { "Save to (full path of a new file)" }
                input #bundle-path type="text" name="path" required placeholder="/home/you/candor-recovery.bundle";
                label for="bundle-pass" { "Passphrase for the bundle" }
                input #bundle-pass type="password" name="passphrase" required autocomplete="new-password";
                button type="submit" { "Write recovery bundle" }
            }))
        }
        @if !s.recent.is_empty() {
            section aria-labelledby="export-title" {
                h2 #export-title { "A record for someone else" }
                p { "Choose entries to show a counsellor or a friend. The file holds their words and proves, with both your signatures, that they were written then and never changed. It holds nothing else of yours." }
                (chrome.form("/settings/export", "stack", html! {
                    fieldset {
                        legend { "Entries to include" }
                        @for e in &s.recent {
                            div.check {
                                input type="checkbox" name="id" value=(e.id) id=(format!("pick-{}", &e.id[..12]));
                                label for=(format!("pick-{}", &e.id[..12])) {
                                    (super::when(&e.time)) " · " (e.author_name) ": " (e.text)
                                }
                            }
                        }
                    }
                    label for="export-path" { "Save to (full path of a new file)" }
                    input #export-path type="text" name="path" required placeholder="/home/you/for-our-counsellor.json";
                    button type="submit" { "Save the record" }
                }))
            }
        }
        @if s.space.is_some() {
            section aria-labelledby="jb-title" {
                h2 #jb-title { "Journal backup" }
                p { @if s.journal_backup { "Your journal is backed up to the relay, locked with your own key; your partner can never open it." } @else { "Your journal stays on this device only." } }
                (chrome.form("/settings/journal-backup", "inline", html! {
                    @if !s.journal_backup { input type="hidden" name="on" value="on"; }
                    button type="submit" { @if s.journal_backup { "Stop backing up my journal" } @else { "Back up my journal (locked)" } }
                }))
            }
            section aria-labelledby="leave-title" {
                h2 #leave-title { "Leave the space" }
                @if s.left {
                    p { "You left the space. Your copy stays readable on this device." }
                } @else {
                    p { "You can leave at any time. Your partner is told; you keep your own copy of everything." }
                    (chrome.form("/settings/leave", "stack", html! {
                        label for="confirm" { "Type the word leave to confirm" }
                        input #confirm type="text" name="confirm" required autocomplete="off";
                        button.danger type="submit" { "Leave the space" }
                    }))
                }
            }
        }
    }
}

/// The settings page.
pub fn page(chrome: &Chrome, s: &Settings, verified: Option<&Verified>) -> Markup {
    super::page(
        chrome,
        Screen::Settings,
        "Safety and settings",
        page_of(chrome, s, verified),
    )
}
