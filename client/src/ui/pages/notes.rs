//! Shared notes: the list with templates, an editor that saves (edits made meanwhile merge),
//! and each note's history.

use super::{page, when, Chrome, Screen};
use crate::ui::views::{Note, NoteEdit, NoteSummary};
use maud::{html, Markup};

const TEMPLATES: &[(&str, &str)] = &[
    ("", "Empty"),
    ("needs", "Our needs"),
    ("boundaries", "Our boundaries"),
    ("agreements", "Our agreements"),
    ("conversation-prep", "Preparing a conversation"),
];

fn link(path: &str, name: &str) -> String {
    format!(
        "{path}?{}",
        serde_urlencoded::to_string([("name", name)]).unwrap_or_default()
    )
}

/// The list of notes.
pub fn list(chrome: &Chrome, notes: &[NoteSummary]) -> Markup {
    let body = html! {
        p.lead { "Notes you both edit: needs, boundaries, agreements, what to talk about. Edits made at the same time, even offline, merge without losing a word." }
        section #note-list data-live aria-labelledby="list-title" {
            h2 #list-title { "Your notes" }
            @if notes.is_empty() { p.empty { "No shared notes yet." } }
            ul.cards {
                @for n in notes.iter().filter(|n| !n.archived) {
                    li.card {
                        a href=(link("/notes/edit", &n.name)) { (n.name) }
                        " · " (n.chars) " characters"
                        @if n.conflicts > 0 { " · " strong.attention { "both of you changed it at once: choose a version" } }
                    }
                }
            }
            @let archived: Vec<&NoteSummary> = notes.iter().filter(|n| n.archived).collect();
            @if !archived.is_empty() {
                details {
                    summary { "Archived notes" }
                    ul.plain {
                        @for n in archived {
                            li {
                                (n.name) " "
                                (chrome.button("/notes/archive", "Restore", &[("name", &n.name), ("restore", "on")]))
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="new-title" {
            h2 #new-title { "Start a note" }
            (chrome.form("/notes", "stack", html! {
                label for="note-name" { "Name" }
                input #note-name type="text" name="name" required placeholder="Our needs";
                label for="template" { "Start from" }
                select #template name="template" {
                    @for (value, name) in TEMPLATES { option value=(value) { (name) } }
                }
                button type="submit" { "Start note" }
            }))
        }
    };
    page(chrome, Screen::Notes, "Shared notes", body)
}

/// The editor of one note.
pub fn edit(chrome: &Chrome, name: &str, note: &Note) -> Markup {
    let title = note.name.clone().unwrap_or_else(|| name.to_string());
    let body = html! {
        @if note.archived { p.flash.ok { "This note is archived." } }
        @if !note.conflicts.is_empty() { (conflicts(chrome, name, note)) }
        (chrome.form("/notes/edit", "stack", html! {
            input type="hidden" name="name" value=(name);
            input type="hidden" name="base" value=(note.heads);
            label for="note-text" { "Text" }
            @if !note.conflicts.is_empty() {
                p.hint #note-text-hint { "Where you both changed the same words, the text shows both versions between lines of <<<<<<< and >>>>>>>. Keep one (or write a new one) and delete those lines, or choose a version above." }
            }
            textarea #note-text name="text" rows="16" aria-describedby=[(!note.conflicts.is_empty()).then_some("note-text-hint")] { (note.text) }
            button type="submit" { "Save" }
        }))
        @if note.waiting_edits > 0 {
            p.hint { (note.waiting_edits) " edit(s) are still arriving; they show once complete." }
        }
        @if !note.invalid_edits.is_empty() {
            section aria-labelledby="refused-title" {
                h2 #refused-title { "Edits that were refused" }
                ul.plain {
                    @for i in &note.invalid_edits {
                        li { (when(&i.time)) " · " (if i.author == "me" { "you" } else { "your partner" }) ": " (i.reason) }
                    }
                }
            }
        }
        p {
            a href=(link("/notes/history", name)) { "History of this note" }
            " · " a href="/notes" { "All notes" }
        }
        @if !note.archived {
            (chrome.quiet_button("/notes/archive", "Archive this note", &[("name", name)]))
        }
    };
    page(chrome, Screen::Notes, &title, body)
}

/// The passages both partners changed at once: each version under its author's name, with a
/// button that keeps it.
fn conflicts(chrome: &Chrome, name: &str, note: &Note) -> Markup {
    html! {
        section #conflicts.conflicts role="alert" aria-labelledby="conflict-title" {
            h2 #conflict-title {
                @if note.conflicts.len() == 1 { "You both changed the same passage at once" }
                @else { "You both changed " (note.conflicts.len()) " passages at once" }
            }
            p { "Nothing was lost: each version is below, under the name of who wrote it. Choose the one to keep, or edit the text yourself." }
            @for (c, conflict) in note.conflicts.iter().enumerate() {
                div.conflict {
                    @for (v, version) in conflict.versions.iter().enumerate() {
                        @let author = version.author_name.as_deref().unwrap_or("another device");
                        figure.version {
                            figcaption { (author) " wrote:" }
                            blockquote { (version.text) }
                            (chrome.button("/notes/resolve", &format!("Keep the version {author} wrote"), &[
                                ("name", name),
                                ("base", &note.heads),
                                ("conflict", &c.to_string()),
                                ("version", &v.to_string()),
                            ]))
                        }
                    }
                }
            }
        }
    }
}

/// A note's history.
pub fn history(chrome: &Chrome, name: &str, edits: &[NoteEdit]) -> Markup {
    let body = html! {
        ol.history {
            @for e in edits {
                li {
                    (when(&e.time)) " · " (e.author_name.as_deref().unwrap_or("?")) ": "
                    @if e.inserted > 0 || e.deleted > 0 { "added " (e.inserted) ", removed " (e.deleted) " characters" }
                    @if let Some(new) = &e.renamed { " named it " q { (new) } }
                    @match e.archived { Some(true) => { " archived it" } Some(false) => { " restored it" } None => {} }
                    @if let Some(reason) = &e.invalid { strong { " (refused: " (reason) ")" } }
                    @if e.conflict { strong.attention { " (made at the same time as the other's change of that passage: choose a version)" } }
                }
            }
        }
        p { a href=(link("/notes/edit", name)) { "Back to the note" } }
    };
    page(chrome, Screen::Notes, &format!("History of {name}"), body)
}
