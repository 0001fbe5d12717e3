//! The private journal: unmistakably for its writer alone.

use super::{when, Chrome, Screen};
use crate::ui::views::JournalEntry;
use maud::{html, Markup};

/// The journal screen.
pub fn page_of(chrome: &Chrome, query: &str, prompt: &str, entries: &[JournalEntry]) -> Markup {
    html! {
        p.private role="note" {
            strong { "Only you can read this." }
            " Your journal is locked with a key your partner never has, and stays on this device."
        }
        (chrome.form("/journal", "stack", html! {
            label for="journal-text" { "Write" }
            p.hint #prompt { "A question to start from: " (prompt) }
            textarea #journal-text name="text" rows="6" required aria-describedby="prompt" {}
            button type="submit" { "Keep it in my journal" }
        }))
        form.search method="get" action="/journal" role="search" {
            label for="q" { "Search your journal" }
            input #q type="search" name="q" value=(query);
            button type="submit" { "Search" }
        }
        section #journal-entries data-live aria-labelledby="entries-title" {
            h2 #entries-title { @if query.is_empty() { "Your entries" } @else { "Entries with " q { (query) } } }
            @if entries.is_empty() { p.empty { "Nothing here yet." } }
            ol.timeline {
                @for e in entries {
                    li.entry.mine {
                        p.meta { time datetime=(e.time) { (when(&e.time)) }
                            @if let Some(edited) = &e.edited { " · edited " (when(edited)) }
                            @if e.versions > 1 { " · " (e.versions) " versions" } }
                        p.text { (e.text) }
                        details {
                            summary { "Change these words" }
                            (chrome.form("/journal/edit", "stack", html! {
                                input type="hidden" name="id" value=(e.id);
                                label for={"edit-" (e.id)} { "New words" }
                                textarea id={"edit-" (e.id)} name="text" rows="4" required { (e.text) }
                                button type="submit" { "Save the new version" }
                            }))
                        }
                    }
                }
            }
        }
    }
}

/// The journal page.
pub fn page(chrome: &Chrome, query: &str, prompt: &str, entries: &[JournalEntry]) -> Markup {
    super::page(
        chrome,
        Screen::Journal,
        "Your private journal",
        page_of(chrome, query, prompt, entries),
    )
}
