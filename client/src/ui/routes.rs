//! The routes: each screen is a GET that renders a page; each action is a POST that changes
//! something, leaves a message for the next page and redirects back (post/redirect/get), so
//! every flow works without JavaScript.

use super::data::Data;
use super::live::Live;
use super::pages::{self, Chrome};
use super::session::{self, Guard, SessionInfo};
use super::views::{Pairing, Stage};
use crate::home::Home;
use anyhow::Result;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::Markup;
use serde::Deserialize;
use std::sync::Arc;

/// The running web app: data, session guard and change feed.
pub struct App {
    pub(super) data: Arc<Data>,
    pub(super) guard: Arc<Guard>,
    live: Live,
}

type AppState = State<Arc<App>>;
type Session = Extension<SessionInfo>;

impl App {
    /// Opens the home's data (at once if no passphrase protects it) and starts the change feed.
    pub async fn start(home: Home, guard: Guard) -> Result<App> {
        let data = Arc::new(Data::new(home).await?);
        Ok(App {
            live: Live::start(data.clone()),
            data,
            guard: Arc::new(guard),
        })
    }

    /// The session guard (its launch URL, for tests and the printed line).
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Stops the change feed, the watcher and the local socket; flushes the store.
    pub async fn stop(&self) {
        self.live.stop();
        self.data.stop().await;
    }

    fn chrome(&self, session: &SessionInfo) -> Chrome {
        Chrome {
            form_token: session.form_token.clone(),
            flash: self.guard.take_flash(),
            paired: self.data.stage() == Stage::Paired,
            version: self.data.version(),
        }
    }

    /// Sends the person to the screen their stage needs, unless they may see this one.
    pub(super) fn gate(&self, allowed: &[Stage]) -> Option<Response> {
        let stage = self.data.stage();
        (!allowed.contains(&stage)).then(|| Redirect::to(home_of(stage)).into_response())
    }

    /// Renders a page, or a plain "something went wrong" page.
    pub(super) fn show(
        &self,
        session: &SessionInfo,
        page: impl FnOnce(&Chrome) -> Result<Markup>,
    ) -> Response {
        let chrome = self.chrome(session);
        match page(&chrome) {
            Ok(markup) => markup.into_response(),
            Err(e) => (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                pages::trouble(&chrome, &format!("{e:#}")),
            )
                .into_response(),
        }
    }

    /// After an action: the message for the next page, and back to `to`.
    pub(super) fn after(&self, result: Result<String>, to: &str) -> Response {
        match result {
            Ok(message) => self.guard.flash(false, message),
            Err(e) => self.guard.flash(true, format!("{e:#}")),
        }
        Redirect::to(to).into_response()
    }
}

fn home_of(stage: Stage) -> &'static str {
    match stage {
        Stage::Welcome => "/welcome",
        Stage::Locked => "/unlock",
        Stage::Unpaired => "/pair",
        Stage::Paired => "/today",
    }
}

const OPEN: &[Stage] = &[Stage::Unpaired, Stage::Paired];
const PAIRED: &[Stage] = &[Stage::Paired];

/// Every route, behind the session guard.
pub fn router(app: Arc<App>) -> Router {
    let guard = app.guard.clone();
    Router::new()
        .route("/", get(start))
        .route("/welcome", get(welcome).post(create_identity))
        .route("/unlock", get(unlock_page).post(unlock))
        .route("/pair", get(pair_page))
        .route("/pair/create", post(create_space))
        .route("/pair/join", post(join_space))
        .route("/safety", get(safety))
        .route("/today", get(today))
        .route("/share", post(share))
        .route("/ack", post(ack))
        .route("/correct", post(correct))
        .route("/events", get(events))
        .merge(super::routes_more::routes())
        .route("/assets/style.css", get(style))
        .route("/assets/app.js", get(script))
        .route("/assets/icon.svg", get(icon))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(guard, session::check))
        .with_state(app)
}

async fn start(State(app): AppState) -> Response {
    Redirect::to(home_of(app.data.stage())).into_response()
}

async fn not_found() -> Response {
    (axum::http::StatusCode::NOT_FOUND, "There is no such page.").into_response()
}

// ---- assets ---------------------------------------------------------------------------------

async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/style.css"))
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    )
}

async fn icon() -> Response {
    asset("image/svg+xml", include_str!("assets/icon.svg"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn events(State(app): AppState) -> Response {
    app.live.events().into_response()
}

// ---- first run, unlocking, pairing ----------------------------------------------------------

async fn welcome(State(app): AppState, Extension(s): Session) -> Response {
    if let Some(away) = app.gate(&[Stage::Welcome]) {
        return away;
    }
    app.show(&s, |c| Ok(pages::onboarding::welcome(c)))
}

#[derive(Deserialize)]
struct IdentityForm {
    name: String,
    #[serde(default)]
    passphrase: String,
    #[serde(default)]
    passphrase_again: String,
}

async fn create_identity(State(app): AppState, Form(form): Form<IdentityForm>) -> Response {
    if app.data.stage() != Stage::Welcome {
        return Redirect::to("/").into_response();
    }
    let pass = zeroize::Zeroizing::new(form.passphrase);
    let again = zeroize::Zeroizing::new(form.passphrase_again);
    if *pass != *again {
        return app.after(
            Err(anyhow::anyhow!(
                "the two passphrases differ; type the same one twice"
            )),
            "/welcome",
        );
    }
    let pass = (!pass.is_empty()).then_some(pass.as_str());
    let result = app.data.create_identity(&form.name, pass).await;
    let message = match pass {
        Some(pass) => format!(
            "Welcome. Your data on this device is protected by your passphrase (strength: {}).",
            super::data::strength_hint(pass)
        ),
        None => "Welcome. Your private journal is ready.".to_string(),
    };
    app.after(result.map(|()| message), "/pair")
}

async fn unlock_page(State(app): AppState, Extension(s): Session) -> Response {
    if let Some(away) = app.gate(&[Stage::Locked]) {
        return away;
    }
    app.show(&s, |c| Ok(pages::onboarding::unlock(c)))
}

#[derive(Deserialize)]
struct UnlockForm {
    passphrase: String,
}

async fn unlock(State(app): AppState, Form(form): Form<UnlockForm>) -> Response {
    let pass = zeroize::Zeroizing::new(form.passphrase);
    let result = app.data.unlock(&pass).await;
    match result {
        Ok(()) => Redirect::to("/").into_response(),
        Err(e) => app.after(Err(e), "/unlock"),
    }
}

async fn pair_page(State(app): AppState, Extension(s): Session) -> Response {
    if let Some(away) = app.gate(OPEN) {
        return away;
    }
    let pairing = app.data.pairing().await;
    if let Ok(Pairing::Paired { .. }) = pairing {
        return Redirect::to("/safety").into_response();
    }
    app.show(&s, |c| Ok(pages::onboarding::pair(c, &pairing?)))
}

#[derive(Deserialize)]
struct CreateSpaceForm {
    relay: String,
    fingerprint: String,
}

async fn create_space(State(app): AppState, Form(form): Form<CreateSpaceForm>) -> Response {
    let result = app.data.create_space(&form.relay, &form.fingerprint).await;
    app.after(
        result.map(|()| "Your space is ready. Now give your partner the invite.".into()),
        "/pair",
    )
}

#[derive(Deserialize)]
struct JoinForm {
    invite: String,
}

async fn join_space(State(app): AppState, Form(form): Form<JoinForm>) -> Response {
    match app.data.join_space(&form.invite).await {
        Ok(()) => app.after(Ok("You joined your partner's space.".into()), "/safety"),
        Err(e) => app.after(Err(e), "/pair"),
    }
}

async fn safety(State(app): AppState, Extension(s): Session) -> Response {
    if let Some(away) = app.gate(PAIRED) {
        return away;
    }
    let number = app.data.safety_number().await;
    let pairing = app.data.pairing().await;
    app.show(&s, |c| {
        Ok(pages::onboarding::safety(c, number?.as_deref(), &pairing?))
    })
}

// ---- today ----------------------------------------------------------------------------------

/// How many entries the timeline shows.
const TIMELINE: usize = 100;

async fn today(State(app): AppState, Extension(s): Session) -> Response {
    if let Some(away) = app.gate(PAIRED) {
        return away;
    }
    let (pairing, needs, entries) = (
        app.data.pairing().await,
        app.data.needs_me().await,
        app.data.timeline(TIMELINE).await,
    );
    app.show(&s, |c| {
        Ok(pages::today::page(
            c,
            &partner_name(&pairing?),
            &needs?,
            &entries?,
        ))
    })
}

/// The partner's name, or a plain word until their first entry arrives.
pub(super) fn partner_name(pairing: &Pairing) -> String {
    match pairing {
        Pairing::Paired {
            partner_name: Some(name),
        } => name.clone(),
        _ => "Your partner".into(),
    }
}

#[derive(Deserialize)]
struct ShareForm {
    kind: String,
    text: String,
    #[serde(default)]
    eta: String,
}

async fn share(State(app): AppState, Form(form): Form<ShareForm>) -> Response {
    let eta = (!form.eta.trim().is_empty()).then_some(form.eta.as_str());
    let result = app.data.share(&form.kind, &form.text, eta).await;
    app.after(result, "/today")
}

#[derive(Deserialize)]
struct IdForm {
    id: String,
    #[serde(default)]
    back: String,
}

async fn ack(State(app): AppState, Form(form): Form<IdForm>) -> Response {
    let result = app.data.acknowledge(&form.id).await;
    app.after(
        result.map(|()| "Thank you sent.".into()),
        back(&form.back, "/today"),
    )
}

#[derive(Deserialize)]
struct CorrectForm {
    id: String,
    text: String,
}

async fn correct(State(app): AppState, Form(form): Form<CorrectForm>) -> Response {
    let result = app.data.correct(&form.id, &form.text).await;
    app.after(result.map(|()| "Correction shared.".into()), "/today")
}

/// Where to go after an action: a local path given by the form, else `default`.
pub(super) fn back<'a>(wanted: &'a str, default: &'a str) -> &'a str {
    let local = wanted.starts_with('/') && !wanted.starts_with("//") && !wanted.contains('\\');
    if local {
        wanted
    } else {
        default
    }
}

/// `?name=…` of the note screens, `?q=…` of the journal.
#[derive(Deserialize)]
pub(super) struct Params {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub q: String,
}

pub(super) type Q = Query<Params>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_back() {
        assert_eq!(back("/promises", "/today"), "/promises");
        assert_eq!(back("//evil.example", "/today"), "/today");
        assert_eq!(back("https://evil.example", "/today"), "/today");
        assert_eq!(back("/\\evil", "/today"), "/today");
        assert_eq!(back("", "/today"), "/today");
    }
}
