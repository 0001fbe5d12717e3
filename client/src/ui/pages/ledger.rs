//! Promises and agreements (with support requests), and the week of plans.

use super::{day, label, page, when, who, Chrome, Screen};
use crate::ui::views::{Agreement, Plan, Promise, Step, Support};
use maud::{html, Markup};

/// Promises, agreements and support requests.
pub fn promises(
    chrome: &Chrome,
    partner: &str,
    promises: &[Promise],
    agreements: &[Agreement],
    support: &[Support],
) -> Markup {
    let body = html! {
        section aria-labelledby="make-title" {
            h2 #make-title { "Make a promise" }
            (chrome.form("/promises", "stack", html! {
                label for="promise-text" { "Promise" }
                input #promise-text type="text" name="text" required placeholder="I will call when I leave work";
                label for="promise-due" { "Due (optional)" }
                input #promise-due type="date" name="when";
                button type="submit" { "Make this promise" }
            }))
        }
        section #promise-list data-live aria-labelledby="promises-title" {
            h2 #promises-title { "Promises" }
            @if promises.is_empty() { p.empty { "No promises yet." } }
            ul.cards {
                @for p in promises { (promise(chrome, partner, p)) }
            }
        }
        section #agreement-list data-live aria-labelledby="agreements-title" {
            h2 #agreements-title { "Agreements" }
            p.hint { "Each agreement is in force only once both of you accept it, and has a date to review it together." }
            @if agreements.is_empty() { p.empty { "No agreements yet." } }
            ul.cards {
                @for a in agreements { (agreement(chrome, partner, a)) }
            }
            (chrome.form("/agreements", "stack", html! {
                label for="agreement-text" { "Propose an agreement" }
                input #agreement-text type="text" name="text" required placeholder="We share our plans for the week every Sunday";
                label for="agreement-review" { "Review on" }
                input #agreement-review type="date" name="when" required;
                button type="submit" { "Propose" }
            }))
        }
        section aria-labelledby="support-title" {
            h2 #support-title { "Ask for support" }
            (chrome.form("/support", "stack", html! {
                label for="need" { "What would help" }
                select #need name="change" {
                    option value="talk" { "A talk" }
                    option value="reassure" { "Reassurance" }
                    option value="company" { "Company" }
                    option value="space" { "Some space" }
                }
                label for="support-note" { "A few words (optional)" }
                input #support-note type="text" name="text";
                button type="submit" { "Ask" }
            }))
            @for s in support {
                p.card { (partner) " asked for " (s.need) " on " (when(&s.time)) ". Answer it on " a href="/today" { "Today" } "." }
            }
        }
    };
    page(chrome, Screen::Promises, "Promises and agreements", body)
}

fn steps(partner: &str, history: &[Step]) -> Markup {
    html! {
        @if !history.is_empty() {
            details {
                summary { "History" }
                ol.history {
                    @for h in history {
                        li {
                            (when(&h.time)) " · " (who(h.author, partner)) ": " (h.what)
                            @if let Some(reason) = &h.invalid { strong { " (refused: " (reason) ")" } }
                        }
                    }
                }
            }
        }
    }
}

fn promise(chrome: &Chrome, partner: &str, p: &Promise) -> Markup {
    let mine = p.promiser == "me";
    html! {
        li.card {
            p {
                strong { (who(p.promiser, partner)) } " promised: " q { (p.text) }
                @if let Some(due) = &p.due { " · due " (when(due)) }
            }
            p.status {
                (label(&p.status))
                @match &p.confirmation {
                    Some(answer) if answer.state == "confirmed" => { " · confirmed" }
                    Some(answer) => { " · disputed" @if let Some(n) = &answer.note { ": " (n) } }
                    None if p.status != "open" => { " · waiting for an answer" }
                    None => {}
                }
            }
            @if mine && p.status == "open" {
                div.actions {
                    (chrome.button("/promises/status", "Kept", &[("id", &p.id), ("change", "kept")]))
                    (chrome.button("/promises/status", "Missed", &[("id", &p.id), ("change", "missed")]))
                }
                (chrome.form("/promises/status", "inline", html! {
                    input type="hidden" name="id" value=(p.id);
                    input type="hidden" name="change" value="renegotiate";
                    label for={"reneg-" (p.id)} { "New words" }
                    input id={"reneg-" (p.id)} type="text" name="text" required;
                    button type="submit" { "Renegotiate" }
                }))
            }
            @if !mine && p.status != "open" && p.confirmation.is_none() {
                div.actions {
                    (chrome.button("/promises/answer", "Confirm", &[("id", &p.id), ("change", "confirm")]))
                }
                (chrome.form("/promises/answer", "inline", html! {
                    input type="hidden" name="id" value=(p.id);
                    input type="hidden" name="change" value="dispute";
                    label for={"dispute-" (p.id)} { "What you see differently" }
                    input id={"dispute-" (p.id)} type="text" name="text" required;
                    button type="submit" { "Dispute" }
                }))
            }
            (steps(partner, &p.history))
        }
    }
}

fn agreement(chrome: &Chrome, partner: &str, a: &Agreement) -> Markup {
    let mine = a.proposer == "me";
    html! {
        li.card {
            p { q { (a.text) } }
            p.status {
                (label(&a.state)) " · proposed by " (who(a.proposer, partner)) " · review " (when(&a.review))
                @if a.due_for_review { strong { " · due for review" } }
            }
            div.actions {
                @if !mine && a.state == "proposed" {
                    (chrome.button("/agreements/act", "Accept", &[("id", &a.id), ("change", "accept")]))
                    (chrome.quiet_button("/agreements/act", "Decline", &[("id", &a.id), ("change", "decline")]))
                }
                @if a.state == "proposed" || a.state == "accepted" {
                    (chrome.quiet_button("/agreements/act", "End it", &[("id", &a.id), ("change", "end")]))
                }
            }
            (steps(partner, &a.history))
        }
    }
}

/// The starts of the local days from today to a week from today (eight instants, ms), in
/// this device's time zone (days are not always 24 hours long).
pub fn week_days(now_ms: u64) -> Vec<u64> {
    let zone = crate::timefmt::zone();
    let today = i64::try_from(now_ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|at| at.to_zoned_datetime(zone.clone()).date())
        .unwrap_or_default();
    (0..8)
        .filter_map(|i| today.checked_add(jiff::Span::new().days(i)).ok())
        .filter_map(|date| date.to_zoned_datetime(zone.clone()).ok())
        .filter_map(|start| u64::try_from(start.timestamp().as_millisecond()).ok())
        .collect()
}

/// The week of plans.
pub fn plans(chrome: &Chrome, partner: &str, days: &[u64], plans: &[Plan]) -> Markup {
    let body = html! {
        section aria-labelledby="plan-title" {
            h2 #plan-title { "Share a plan" }
            (chrome.form("/plans", "stack", html! {
                label for="plan-when" { "When" }
                input #plan-when type="datetime-local" name="when" required;
                label for="plan-text" { "What" }
                input #plan-text type="text" name="text" required placeholder="Dinner with my sister";
                div.check {
                    input #busy type="checkbox" name="busy_only" value="on";
                    label for="busy" { "Share only that I am busy (the words stay on this device)" }
                }
                button type="submit" { "Share plan" }
            }))
        }
        section #week-plans data-live aria-labelledby="week-title" {
            h2 #week-title { "The next seven days" }
            @for pair in days.windows(2) {
                @let day_plans: Vec<&Plan> = plans.iter().filter(|p| p.when_ms >= pair[0] && p.when_ms < pair[1]).collect();
                h3 { (day(&crate::timefmt::rfc3339(pair[0]))) }
                @if day_plans.is_empty() {
                    p.empty { "Nothing planned." }
                } @else {
                    ul.plain {
                        @for p in day_plans {
                            li {
                                (when(&p.when)) " · " (who(p.author, partner)) ": "
                                @match (&p.text, p.busy_only) {
                                    (Some(text), true) => { (text) " " em { "(shared as busy)" } }
                                    (Some(text), false) => { (text) }
                                    (None, _) => { em { "busy" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(chrome, Screen::Plans, "Plans", body)
}
