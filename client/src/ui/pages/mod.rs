//! The screens, as maud templates over the values of [`super::views`]. maud escapes every
//! interpolated string, so words from an entry can never become markup.

pub mod journal;
pub mod ledger;
pub mod notes;
pub mod onboarding;
pub mod settings;
pub mod today;
pub mod week;

use super::session::{Flash, FORM_TOKEN_FIELD};
use maud::{html, Markup, DOCTYPE};

/// The screens in the main navigation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    /// First run, unlocking, pairing: no navigation yet.
    Setup,
    /// What needs me, the timeline, the composer.
    Today,
    /// Promises, agreements, support.
    Promises,
    /// The week's plans.
    Plans,
    /// Shared notes.
    Notes,
    /// Goals and the weekly summary.
    Week,
    /// The private journal.
    Journal,
    /// Safety number, verification, passphrase, backup, leaving.
    Settings,
}

const NAV: &[(Screen, &str, &str)] = &[
    (Screen::Today, "/today", "Today"),
    (Screen::Promises, "/promises", "Promises"),
    (Screen::Plans, "/plans", "Plans"),
    (Screen::Notes, "/notes", "Notes"),
    (Screen::Week, "/week", "This week"),
    (Screen::Journal, "/journal", "Journal"),
    (Screen::Settings, "/settings", "Safety & settings"),
];

/// What every page needs besides its own content.
pub struct Chrome {
    /// The session's form token, put in every form.
    pub form_token: String,
    /// A message left by the previous action.
    pub flash: Option<Flash>,
    /// Whether the device is in a space (otherwise only the journal and settings are offered).
    pub paired: bool,
    /// The data version the page shows (the live-update script compares it with the server's).
    pub version: u64,
}

impl Chrome {
    /// A form that posts to `action` with the session's form token.
    pub fn form(&self, action: &str, class: &str, body: Markup) -> Markup {
        html! {
            form method="post" action=(action) class=(class) {
                input type="hidden" name=(FORM_TOKEN_FIELD) value=(self.form_token);
                (body)
            }
        }
    }

    /// A single-button form.
    pub fn button(&self, action: &str, label: &str, fields: &[(&str, &str)]) -> Markup {
        self.one_button(action, label, fields, "")
    }

    /// A single-button form for a step back (archive, drop, end, decline): drawn quieter.
    pub fn quiet_button(&self, action: &str, label: &str, fields: &[(&str, &str)]) -> Markup {
        self.one_button(action, label, fields, "quiet")
    }

    fn one_button(
        &self,
        action: &str,
        label: &str,
        fields: &[(&str, &str)],
        class: &str,
    ) -> Markup {
        self.form(
            action,
            "inline",
            html! {
                @for (name, value) in fields {
                    input type="hidden" name=(name) value=(value);
                }
                button type="submit" class=(class) { (label) }
            },
        )
    }
}

/// The whole page around `body`.
pub fn page(chrome: &Chrome, screen: Screen, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Candor" }
                link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/app.js" defer {}
            }
            body data-version=(chrome.version) {
                a.skip href="#main" { "Skip to the content" }
                header.top {
                    a.brand href="/" { "Candor" }
                    @if screen != Screen::Setup {
                        nav aria-label="Main" {
                            ul {
                                @for (which, href, label) in NAV {
                                    @if chrome.paired || matches!(which, Screen::Journal | Screen::Settings) {
                                        li {
                                            a href=(href) aria-current=[(*which == screen).then_some("page")] { (label) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    @if let Some(flash) = &chrome.flash {
                        @if flash.error {
                            p.flash.error role="alert" { (flash.text) }
                        } @else {
                            p.flash.ok role="status" { (flash.text) }
                        }
                    }
                    (body)
                }
            }
        }
    }
}

/// A page for a failure while reading data.
pub fn trouble(chrome: &Chrome, message: &str) -> Markup {
    page(
        chrome,
        Screen::Setup,
        "Something went wrong",
        html! {
            p { (message) }
            p { "Nothing was changed. " a href="/" { "Back to the start" } }
        },
    )
}

/// `rfc3339` (any offset) in this device's time zone (`TZ`, else the system's), formatted.
fn local(rfc3339: &str, format: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(at) => at
            .to_zoned_datetime(crate::timefmt::zone())
            .strftime(format)
            .to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

/// "Tue 1 Dec, 18:05" from an RFC 3339 time, in local time.
pub fn when(rfc3339: &str) -> String {
    local(rfc3339, "%a %-d %b, %H:%M")
}

/// "Tuesday 1 December" from an RFC 3339 time, in local time.
pub fn day(rfc3339: &str) -> String {
    local(rfc3339, "%A %-d %B")
}

/// A kind or state as people say it ("checkin" → "Check-in").
pub fn label(kind: &str) -> String {
    match kind {
        "checkin" => "Check-in".into(),
        other => {
            let spaced = other.replace(['_', '-'], " ");
            let mut chars = spaced.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        }
    }
}

/// "you" or the partner's name.
pub fn who<'a>(author: &str, partner: &'a str) -> &'a str {
    if author == "me" {
        "You"
    } else {
        partner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_days_and_hours_in_local_time() {
        // The tests run with the zone the process reads; an instant given with the local
        // offset reads back as written, whatever that zone is.
        let at = crate::timefmt::parse("2026-12-01 18:05").map(crate::timefmt::rfc3339);
        let at = at.unwrap_or_default();
        assert_eq!(when(&at), "Tue 1 Dec, 18:05");
        assert_eq!(day(&at), "Tuesday 1 December");
        assert_eq!(when("not a time"), "not a time");
        assert_eq!(when("not a time"), "not a time");
    }

    #[test]
    fn kinds_read_as_words() {
        assert_eq!(label("checkin"), "Check-in");
        assert_eq!(label("promise_made"), "Promise made");
    }

    #[test]
    fn entry_words_are_escaped() {
        let chrome = Chrome {
            form_token: "t".into(),
            flash: Some(Flash {
                error: false,
                text: "<script>alert(1)</script>".into(),
            }),
            paired: true,
            version: 0,
        };
        let html = page(&chrome, Screen::Today, "<b>", html! {}).into_string();
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<b>"));
    }
}
