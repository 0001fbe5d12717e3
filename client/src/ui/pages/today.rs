//! Today: what needs me, the composer (**New entry**, a kind, **Share**) and the timeline of
//! both partners, which updates live.

use super::{label, when, who, Chrome, Screen};
use crate::ui::data::ENTRY_KINDS;
use crate::ui::views::{Entry, NeedsMe};
use maud::{html, Markup};

/// The Today screen.
pub fn page_body(chrome: &Chrome, partner: &str, needs: &NeedsMe, entries: &[Entry]) -> Markup {
    html! {
        (needs_me(chrome, partner, needs))
        section.composer aria-labelledby="composer-title" {
            h2 #composer-title { "Share something" }
            (chrome.form("/share", "stack", html! {
                label for="entry" { "New entry" }
                textarea #entry name="text" rows="2" required placeholder="Running late, home by 19:30" {}
                div.row {
                    div {
                        label for="kind" { "Kind" }
                        select #kind name="kind" {
                            @for (value, name) in ENTRY_KINDS {
                                option value=(value) { (name) }
                            }
                        }
                    }
                    div {
                        label for="eta" { "Home by (check-ins, optional)" }
                        input #eta type="time" name="eta";
                    }
                }
                button type="submit" { "Share" }
            }))
        }
        section #timeline data-live aria-labelledby="timeline-title" {
            h2 #timeline-title { "Timeline" }
            @if entries.is_empty() {
                p.empty { "Nothing shared yet. What you and " (partner) " share shows here." }
            }
            ol.timeline {
                @for entry in entries {
                    (item(chrome, partner, entry))
                }
            }
        }
    }
}

/// The whole Today page.
pub fn page(chrome: &Chrome, partner: &str, needs: &NeedsMe, entries: &[Entry]) -> Markup {
    super::page(
        chrome,
        Screen::Today,
        "Today",
        page_body(chrome, partner, needs, entries),
    )
}

fn item(chrome: &Chrome, partner: &str, entry: &Entry) -> Markup {
    let mine = entry.author == "me";
    html! {
        li.entry.mine[mine].theirs[!mine] {
            p.meta {
                span.kind { (label(&entry.kind)) }
                " · " (who(entry.author, partner)) " · "
                time datetime=(entry.time) { (when(&entry.time)) }
            }
            p.text { (entry.text) }
            @if let Some(eta) = &entry.eta {
                p.eta { "Home by " (eta) }
            }
            @if entry.replaces.is_some() {
                p.note { "A correction of an earlier entry." }
            }
            @if !entry.corrected_by.is_empty() {
                p.note { "Corrected later." }
            }
            @if entry.seen_by_partner == Some(true) {
                p.seen { "Seen by " (partner) }
            }
            @if mine && is_shareable(&entry.kind) && entry.corrected_by.is_empty() {
                details {
                    summary { "Correct this entry" }
                    (chrome.form("/correct", "stack", html! {
                        input type="hidden" name="id" value=(entry.id);
                        label for={"correct-" (entry.id)} { "What is true instead" }
                        input id={"correct-" (entry.id)} type="text" name="text" required value=(entry.text);
                        button type="submit" { "Share the correction" }
                    }))
                    p.hint { "Your partner sees both: the entry and your correction." }
                }
            }
            @if !mine && is_shareable(&entry.kind) {
                (chrome.button("/ack", "I saw this, thank you", &[("id", &entry.id), ("back", "/today")]))
            }
        }
    }
}

fn is_shareable(kind: &str) -> bool {
    ENTRY_KINDS.iter().any(|(k, _)| *k == kind)
}

fn needs_me(chrome: &Chrome, partner: &str, needs: &NeedsMe) -> Markup {
    let nothing = needs.promises_to_answer.is_empty()
        && needs.support_to_answer.is_empty()
        && needs.agreements_to_answer.is_empty()
        && needs.agreements_to_review.is_empty();
    html! {
        section.needs #needs data-live aria-labelledby="needs-title" {
            h2 #needs-title { "What needs you" }
            @if nothing {
                p.empty { "Nothing waits for you right now." }
            }
            ul.cards {
                @for p in &needs.promises_to_answer {
                    li.card {
                        p { (partner) " says their promise " q { (p.text) } " was " strong { (p.status) } "." }
                        div.actions {
                            (chrome.form("/promises/answer", "inline", html! {
                                input type="hidden" name="id" value=(p.id);
                                input type="hidden" name="change" value="confirm";
                                input type="hidden" name="back" value="/today";
                                button type="submit" { "Confirm" }
                            }))
                            a href="/promises" { "Dispute it…" }
                        }
                    }
                }
                @for s in &needs.support_to_answer {
                    li.card {
                        p { (partner) " asks for " strong { (s.need) }
                            @if let Some(note) = &s.note { ": " q { (note) } } "." }
                        (chrome.form("/support/reply", "inline", html! {
                            input type="hidden" name="id" value=(s.id);
                            input type="hidden" name="change" value="reply";
                            input type="hidden" name="back" value="/today";
                            label for={"reply-" (s.id)} { "Your answer" }
                            input id={"reply-" (s.id)} type="text" name="text" required;
                            button type="submit" { "Answer" }
                        }))
                    }
                }
                @for a in &needs.agreements_to_answer {
                    li.card {
                        p { (partner) " proposes: " q { (a.text) } }
                        div.actions {
                            (chrome.button("/agreements/act", "Accept", &[("id", &a.id), ("change", "accept"), ("back", "/today")]))
                            (chrome.quiet_button("/agreements/act", "Decline", &[("id", &a.id), ("change", "decline"), ("back", "/today")]))
                        }
                    }
                }
                @for a in &needs.agreements_to_review {
                    li.card {
                        p { "Time to review together: " q { (a.text) } }
                        a href="/promises" { "Review it" }
                    }
                }
            }
        }
    }
}
