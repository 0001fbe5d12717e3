//! `candor ui` page benchmark (BENCHMARKS.md, "Web app"): how long each screen takes to render
//! when the device holds N entries (default 100,000; the target is under 50 ms per page).
//!
//! Two devices are paired through a relay on loopback; Alex imports N entries (`log import`)
//! and syncs; then the web app is started in this process on Alex's home and every screen is
//! requested through its router (session cookie included), 5 times each after one warm-up.
//!
//! Run: `cargo run --release -p candor-tests --bin ui_bench [ENTRIES]`

use anyhow::{bail, Context as _, Result};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use candor::home::Home;
use candor::ui::session::Guard;
use candor::ui::{router, App};
use candor_tests::Relay;
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt as _;

const PAGES: &[&str] = &[
    "/today",
    "/promises",
    "/plans",
    "/notes",
    "/week",
    "/journal",
    "/settings",
    "/safety",
];
const RUNS: usize = 5;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let entries: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().context("ENTRIES must be a number")?,
        None => 100_000,
    };
    let root = tempfile::tempdir()?;
    let relay = Relay::start(&root.path().join("relay"))?;
    let (alex, _sam) = candor_tests::pair(root.path(), &relay)?;
    let file = root.path().join("entries.txt");
    let lines: Vec<String> = (0..entries)
        .map(|i| format!("entry {i}: home by 19:30, the usual way"))
        .collect();
    std::fs::write(&file, lines.join("\n"))?;
    let started = Instant::now();
    alex.ok(&["log", "import", &file.display().to_string()])?;
    alex.ok(&["sync"])?;
    eprintln!(
        "imported and pushed {entries} entries in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let guard = Guard::new(addr)?;
    let launch = guard.launch_url();
    let app = Arc::new(App::start(Home::new(alex.home.clone()), guard).await?);
    let host = addr.to_string();
    let get = |path: &str, cookie: Option<&str>| {
        let mut request = Request::get(path).header(header::HOST, &host);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.body(Body::empty())
    };
    let path = launch
        .split_once(&host)
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    let response = router(app.clone()).oneshot(get(&path, None)?).await?;
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
        .context("no session cookie")?;

    println!("| page | median | min | max | under 50 ms |");
    println!("|---|---|---|---|---|");
    for page in PAGES {
        let mut times = Vec::new();
        for run in 0..=RUNS {
            let started = Instant::now();
            let response = router(app.clone())
                .oneshot(get(page, Some(&cookie))?)
                .await?;
            let status = response.status();
            let _ = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
            if status != StatusCode::OK {
                bail!("{page} answered {status}");
            }
            if run > 0 {
                times.push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!(
            "| `{page}` | {median:.1} ms | {:.1} ms | {:.1} ms | {} |",
            times[0],
            times[times.len() - 1],
            if median < 50.0 { "yes" } else { "no" }
        );
    }
    app.stop().await;
    drop(relay);
    Ok(())
}
