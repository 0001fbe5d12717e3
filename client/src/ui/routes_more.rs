//! The routes of the everyday screens past Today: promises and agreements, plans, shared
//! notes, this week, the journal, safety and settings.

use super::data::needs_me_of;
use super::pages;
use super::routes::{back, partner_name, App, Q};
use super::views::Stage;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;
use std::sync::Arc;
use zeroize::Zeroizing;

type AppState = State<Arc<App>>;
type Session = Extension<super::session::SessionInfo>;

const OPEN: &[Stage] = &[Stage::Unpaired, Stage::Paired];
const PAIRED: &[Stage] = &[Stage::Paired];

/// The routes of this module.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/promises", get(promises).post(make_promise))
        .route("/promises/status", post(promise_status))
        .route("/promises/answer", post(promise_answer))
        .route("/agreements", post(propose_agreement))
        .route("/agreements/act", post(agreement_act))
        .route("/support", post(ask_support))
        .route("/support/reply", post(answer_support))
        .route("/plans", get(plans).post(add_plan))
        .route("/notes", get(notes).post(new_note))
        .route("/notes/edit", get(note).post(save_note))
        .route("/notes/resolve", post(resolve_note))
        .route("/notes/history", get(note_history))
        .route("/notes/archive", post(archive_note))
        .route("/week", get(week))
        .route("/goals", post(add_goal))
        .route("/goals/update", post(update_goal))
        .route("/journal", get(journal).post(write_journal))
        .route("/journal/edit", post(edit_journal))
        .route("/welcome/restore", post(restore))
        .route("/settings", get(settings))
        .route("/settings/verify", get(verify))
        .route("/settings/passphrase", post(passphrase))
        .route("/settings/bundle", post(bundle))
        .route("/settings/export", post(export_verifiable))
        .route("/settings/journal-backup", post(journal_backup))
        .route("/settings/leave", post(leave))
}

// ---- promises, agreements, support ----------------------------------------------------------

async fn promises(State(app): AppState, Extension(s): Session) -> Response {
    if let Some(away) = app.gate(PAIRED) {
        return away;
    }
    let (pairing, ledger) = (app.data.pairing().await, app.data.ledger().await);
    app.show(&s, |c| {
        let ledger = ledger?;
        let support_to_answer = needs_me_of(ledger.clone()).support_to_answer;
        Ok(pages::ledger::promises(
            c,
            &partner_name(&pairing?),
            &ledger.promises,
            &ledger.agreements,
            &support_to_answer,
        ))
    })
}

#[derive(Deserialize)]
struct TextForm {
    text: String,
    #[serde(default)]
    when: String,
}

async fn make_promise(State(app): AppState, Form(form): Form<TextForm>) -> Response {
    let due = (!form.when.trim().is_empty()).then_some(form.when.as_str());
    let result = app.data.promise(&form.text, due).await;
    app.after(result.map(|()| "Promise made.".into()), "/promises")
}

#[derive(Deserialize)]
struct ChangeForm {
    id: String,
    change: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    back: String,
}

async fn promise_status(State(app): AppState, Form(form): Form<ChangeForm>) -> Response {
    let result = app
        .data
        .promise_status(&form.id, &form.change, Some(&form.text))
        .await;
    app.after(
        result.map(|()| "Saved. Your partner will be asked to confirm.".into()),
        back(&form.back, "/promises"),
    )
}

async fn promise_answer(State(app): AppState, Form(form): Form<ChangeForm>) -> Response {
    let dispute = (form.change == "dispute").then_some(form.text.as_str());
    let result = app.data.promise_answer(&form.id, dispute).await;
    app.after(
        result.map(|()| "Answer sent.".into()),
        back(&form.back, "/promises"),
    )
}

async fn propose_agreement(State(app): AppState, Form(form): Form<TextForm>) -> Response {
    let result = app.data.propose_agreement(&form.text, &form.when).await;
    app.after(
        result.map(|()| "Agreement proposed. It is in force once your partner accepts.".into()),
        "/promises",
    )
}

async fn agreement_act(State(app): AppState, Form(form): Form<ChangeForm>) -> Response {
    let result = app.data.agreement_act(&form.id, &form.change).await;
    app.after(
        result.map(|()| "Saved.".into()),
        back(&form.back, "/promises"),
    )
}

async fn ask_support(State(app): AppState, Form(form): Form<ChangeForm>) -> Response {
    let note = (!form.text.trim().is_empty()).then_some(form.text.as_str());
    let result = app.data.ask_support(&form.change, note).await;
    app.after(
        result.map(|()| "Your partner will see your request.".into()),
        back(&form.back, "/promises"),
    )
}

async fn answer_support(State(app): AppState, Form(form): Form<ChangeForm>) -> Response {
    let result = app.data.answer_support(&form.id, &form.text).await;
    app.after(
        result.map(|()| "Reply sent.".into()),
        back(&form.back, "/promises"),
    )
}

// ---- plans ----------------------------------------------------------------------------------

async fn plans(State(app): AppState, Extension(s): Session) -> Response {
    if let Some(away) = app.gate(PAIRED) {
        return away;
    }
    let days = pages::ledger::week_days(crate::timefmt::now_ms());
    let (from, to) = (
        days.first().copied().unwrap_or_default(),
        days.last().copied().unwrap_or_default(),
    );
    let (pairing, plans) = (app.data.pairing().await, app.data.plans(from, to).await);
    app.show(&s, |c| {
        Ok(pages::ledger::plans(
            c,
            &partner_name(&pairing?),
            &days,
            &plans?,
        ))
    })
}

#[derive(Deserialize)]
struct PlanForm {
    when: String,
    text: String,
    #[serde(default)]
    busy_only: Option<String>,
}

async fn add_plan(State(app): AppState, Form(form): Form<PlanForm>) -> Response {
    let result = app
        .data
        .add_plan(&form.when, &form.text, form.busy_only.is_some())
        .await;
    app.after(result.map(|()| "Plan shared.".into()), "/plans")
}

// ---- shared notes ---------------------------------------------------------------------------

async fn notes(State(app): AppState, Extension(s): Session) -> Response {
    if let Some(away) = app.gate(PAIRED) {
        return away;
    }
    let notes = app.data.notes(true).await;
    app.show(&s, |c| Ok(pages::notes::list(c, &notes?)))
}

#[derive(Deserialize)]
struct NewNoteForm {
    name: String,
    #[serde(default)]
    template: String,
}

async fn new_note(State(app): AppState, Form(form): Form<NewNoteForm>) -> Response {
    let template = (!form.template.is_empty()).then_some(form.template.as_str());
    match app.data.new_note(&form.name, template).await {
        Ok(()) => {
            let to = format!("/notes/edit?{}", name_query(&form.name));
            app.after(Ok("Note started.".into()), &to)
        }
        Err(e) => app.after(Err(e), "/notes"),
    }
}

fn name_query(name: &str) -> String {
    serde_urlencoded::to_string([("name", name.trim())]).unwrap_or_default()
}

async fn note(State(app): AppState, Extension(s): Session, params: Q) -> Response {
    if let Some(away) = app.gate(PAIRED) {
        return away;
    }
    let note = app.data.note(&params.name).await;
    app.show(&s, |c| Ok(pages::notes::edit(c, &params.name, &note?)))
}

#[derive(Deserialize)]
struct SaveNoteForm {
    name: String,
    text: String,
    #[serde(default)]
    base: String,
}

async fn save_note(State(app): AppState, Form(form): Form<SaveNoteForm>) -> Response {
    let result = app.data.save_note(&form.name, &form.text, &form.base).await;
    let to = format!("/notes/edit?{}", name_query(&form.name));
    app.after(
        result.map(|said| match said.as_str() {
            "no changes" => "No changes to save.".to_string(),
            _ => "Saved. Edits your partner made meanwhile are merged in.".to_string(),
        }),
        &to,
    )
}

#[derive(Deserialize)]
struct ResolveForm {
    name: String,
    base: String,
    conflict: usize,
    version: usize,
}

async fn resolve_note(State(app): AppState, Form(form): Form<ResolveForm>) -> Response {
    let result = app
        .data
        .keep_version(&form.name, &form.base, form.conflict, form.version)
        .await;
    let to = format!("/notes/edit?{}", name_query(&form.name));
    app.after(
        result.map(|_| "Saved: that passage now reads as the version you chose.".into()),
        &to,
    )
}

async fn note_history(State(app): AppState, Extension(s): Session, params: Q) -> Response {
    if let Some(away) = app.gate(PAIRED) {
        return away;
    }
    let history = app.data.note_history(&params.name).await;
    app.show(&s, |c| {
        Ok(pages::notes::history(c, &params.name, &history?))
    })
}

#[derive(Deserialize)]
struct ArchiveForm {
    name: String,
    #[serde(default)]
    restore: Option<String>,
}

async fn archive_note(State(app): AppState, Form(form): Form<ArchiveForm>) -> Response {
    let restore = form.restore.is_some();
    let result = app.data.archive_note(&form.name, restore).await;
    app.after(
        result.map(|()| {
            if restore {
                "Note restored."
            } else {
                "Note archived."
            }
            .into()
        }),
        "/notes",
    )
}

// ---- this week ------------------------------------------------------------------------------

/// How many weeks the summary chart shows.
const WEEKS: u32 = 8;

async fn week(State(app): AppState, Extension(s): Session) -> Response {
    if let Some(away) = app.gate(PAIRED) {
        return away;
    }
    let (pairing, goals, weeks) = (
        app.data.pairing().await,
        app.data.goals().await,
        app.data.summary(WEEKS).await,
    );
    app.show(&s, |c| {
        Ok(pages::week::page(
            c,
            &partner_name(&pairing?),
            &goals?,
            &weeks?,
        ))
    })
}

async fn add_goal(State(app): AppState, Form(form): Form<TextForm>) -> Response {
    let result = app.data.add_goal(&form.text).await;
    app.after(result.map(|()| "Goal set for this week.".into()), "/week")
}

async fn update_goal(State(app): AppState, Form(form): Form<ChangeForm>) -> Response {
    let result = app
        .data
        .update_goal(&form.id, &form.change, Some(&form.text))
        .await;
    app.after(result.map(|()| "Saved.".into()), "/week")
}

// ---- the journal ----------------------------------------------------------------------------

async fn journal(State(app): AppState, Extension(s): Session, params: Q) -> Response {
    if let Some(away) = app.gate(OPEN) {
        return away;
    }
    let query = params.q.trim();
    let (entries, prompt) = (
        app.data.journal((!query.is_empty()).then_some(query)).await,
        app.data.journal_prompt().await,
    );
    app.show(&s, |c| {
        Ok(pages::journal::page(c, query, &prompt?, &entries?))
    })
}

#[derive(Deserialize)]
struct JournalForm {
    text: String,
}

async fn write_journal(State(app): AppState, Form(form): Form<JournalForm>) -> Response {
    let text = Zeroizing::new(form.text);
    let result = app.data.write_journal(&text).await;
    app.after(
        result.map(|()| "Written in your journal. Only you can read it.".into()),
        "/journal",
    )
}

#[derive(Deserialize)]
struct JournalEditForm {
    id: String,
    text: String,
}

async fn edit_journal(State(app): AppState, Form(form): Form<JournalEditForm>) -> Response {
    let text = Zeroizing::new(form.text);
    let result = app.data.edit_journal(&form.id, &text).await;
    app.after(
        result.map(|()| "Saved. Only you can read it.".into()),
        "/journal",
    )
}

// ---- restoring, safety and settings --------------------------------------------------------------------

#[derive(Deserialize)]
struct RestoreForm {
    path: String,
    passphrase: String,
    #[serde(default)]
    device_passphrase: String,
}

async fn restore(State(app): AppState, Form(form): Form<RestoreForm>) -> Response {
    if app.data.stage() != Stage::Welcome {
        return app.after(
            Err(anyhow::anyhow!(
                "this device has its data already; nothing changed"
            )),
            "/",
        );
    }
    let (pass, device) = (
        Zeroizing::new(form.passphrase),
        Zeroizing::new(form.device_passphrase),
    );
    let device = (!device.is_empty()).then_some(device);
    match app.data.restore_bundle(&form.path, pass, device).await {
        Ok(said) => app.after(Ok(said), "/today"),
        Err(e) => app.after(Err(e), "/welcome"),
    }
}

async fn settings(State(app): AppState, Extension(s): Session) -> Response {
    if let Some(away) = app.gate(OPEN) {
        return away;
    }
    let settings = app.data.settings().await;
    app.show(&s, |c| Ok(pages::settings::page(c, &settings?, None)))
}

async fn verify(State(app): AppState, Extension(s): Session) -> Response {
    if let Some(away) = app.gate(PAIRED) {
        return away;
    }
    let (settings, verified) = (app.data.settings().await, app.data.verify().await);
    app.show(&s, |c| {
        Ok(pages::settings::page(c, &settings?, Some(&verified?)))
    })
}

#[derive(Deserialize)]
struct PassphraseForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    again: String,
    #[serde(default)]
    remove: Option<String>,
}

async fn passphrase(State(app): AppState, Form(form): Form<PassphraseForm>) -> Response {
    let (current, new, again) = (
        Zeroizing::new(form.current),
        Zeroizing::new(form.new),
        Zeroizing::new(form.again),
    );
    let result = if form.remove.is_some() {
        app.data.set_passphrase(&current, None).await
    } else if *new != *again {
        Err(anyhow::anyhow!(
            "the two new passphrases differ; nothing changed"
        ))
    } else {
        app.data.set_passphrase(&current, Some(&new)).await
    };
    app.after(result, "/settings")
}

#[derive(Deserialize)]
struct BundleForm {
    path: String,
    passphrase: String,
}

async fn bundle(State(app): AppState, Form(form): Form<BundleForm>) -> Response {
    let pass = Zeroizing::new(form.passphrase);
    let result = app.data.export_bundle(&form.path, &pass).await;
    app.after(result, "/settings")
}

/// The verifiable record's form: the ticked entries (`id`, repeated) and the file to write.
async fn export_verifiable(
    State(app): AppState,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let ids: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "id")
        .map(|(_, v)| v.clone())
        .collect();
    let path = fields
        .iter()
        .find(|(k, _)| k == "path")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    let result = app.data.export_verifiable(&ids, path).await;
    app.after(result, "/settings")
}

#[derive(Deserialize)]
struct SwitchForm {
    #[serde(default)]
    on: Option<String>,
}

async fn journal_backup(State(app): AppState, Form(form): Form<SwitchForm>) -> Response {
    let result = app.data.journal_backup(form.on.is_some()).await;
    app.after(result, "/settings")
}

#[derive(Deserialize)]
struct LeaveForm {
    #[serde(default)]
    confirm: String,
}

async fn leave(State(app): AppState, Form(form): Form<LeaveForm>) -> Response {
    if form.confirm.trim() != "leave" {
        return app.after(
            Err(anyhow::anyhow!(
                "type the word leave to confirm; nothing changed"
            )),
            "/settings",
        );
    }
    let result = app.data.leave().await;
    match result {
        Ok(()) => app.after(
            Ok("You left the space. Your copy stays on this device.".into()),
            "/settings",
        ),
        Err(e) => app.after(Err(e), "/settings"),
    }
}
