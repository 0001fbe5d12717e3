//! This week: goals with progress, and the weekly summary as an SVG chart. Never a streak.

use super::{who, Chrome, Screen};
use crate::ui::views::{Goal, Week};
use maud::{html, Markup};

/// The week screen.
pub fn page_of(chrome: &Chrome, partner: &str, goals: &[Goal], weeks: &[Week]) -> Markup {
    html! {
        section #goals data-live aria-labelledby="goals-title" {
            h2 #goals-title { "Goals this week" }
            p.hint { "One or two small, realistic goals each are plenty." }
            @if goals.is_empty() { p.empty { "No goals for this week yet." } }
            ul.cards {
                @for g in goals {
                    li.card {
                        p { strong { (who(g.author, partner)) } ": " (g.text) }
                        p.status { (super::label(&g.status)) }
                        @if !g.updates.is_empty() {
                            ol.history {
                                @for u in &g.updates {
                                    li { (super::when(&u.time)) " · " (u.what) @if let Some(t) = &u.text { ": " (t) } }
                                }
                            }
                        }
                        @if g.author == "me" && g.status == "open" {
                            (chrome.form("/goals/update", "inline", html! {
                                input type="hidden" name="id" value=(g.id);
                                input type="hidden" name="change" value="progress";
                                label for={"progress-" (g.id)} { "Progress" }
                                input id={"progress-" (g.id)} type="text" name="text" required;
                                button type="submit" { "Add progress" }
                            }))
                            div.actions {
                                (chrome.button("/goals/update", "Done", &[("id", &g.id), ("change", "done")]))
                                (chrome.quiet_button("/goals/update", "Drop it", &[("id", &g.id), ("change", "drop")]))
                            }
                        }
                    }
                }
            }
            (chrome.form("/goals", "stack", html! {
                label for="goal" { "A goal for this week" }
                input #goal type="text" name="text" required placeholder="Share my plans each morning";
                button type="submit" { "Set goal" }
            }))
        }
        section #summary data-live aria-labelledby="summary-title" {
            h2 #summary-title { "The last weeks" }
            (chart(weeks))
            table {
                caption { "Each week in numbers" }
                thead { tr { th scope="col" { "Week" } th scope="col" { "Promises kept" } th scope="col" { "Made" } th scope="col" { "Check-ins" } th scope="col" { "Goals done" } } }
                tbody {
                    @for w in weeks {
                        tr { th scope="row" { (w.week) } td { (w.promises.kept) } td { (w.promises.made) } td { (w.checkins) } td { (w.goals_done) } }
                    }
                }
            }
        }
    }
}

/// The week screen, as a page.
pub fn page(chrome: &Chrome, partner: &str, goals: &[Goal], weeks: &[Week]) -> Markup {
    super::page(
        chrome,
        Screen::Week,
        "This week",
        page_of(chrome, partner, goals, weeks),
    )
}

/// Promises kept and check-ins per week, as bars (presentation attributes only, no styles).
fn chart(weeks: &[Week]) -> Markup {
    let max = weeks
        .iter()
        .map(|w| w.promises.kept.max(w.checkins))
        .max()
        .unwrap_or(0)
        .max(1);
    let (width, height, base) = (640u64, 220u64, 190u64);
    let slot = width / (weeks.len().max(1) as u64);
    let bar = (slot / 3).max(4);
    let scale = |n: u64| n * 160 / max;
    html! {
        svg.chart viewBox={"0 0 " (width) " " (height)} role="img" aria-labelledby="chart-title" {
            title #chart-title { "Promises kept (dark) and check-ins (light) per week" }
            line x1="0" y1=(base) x2=(width) y2=(base) stroke="#8a8a8a" stroke-width="1" {}
            @for (i, w) in weeks.iter().enumerate() {
                @let x = i as u64 * slot + slot / 2 - bar;
                rect x=(x) y=(base - scale(w.promises.kept)) width=(bar) height=(scale(w.promises.kept)) fill="#2f5d50" {}
                rect x=(x + bar) y=(base - scale(w.checkins)) width=(bar) height=(scale(w.checkins)) fill="#9cc5b5" {}
                text x=(x + bar) y=(base + 20) text-anchor="middle" font-size="12" fill="#333333" { (w.week.rsplit('-').next().unwrap_or(&w.week)) }
            }
        }
    }
}
