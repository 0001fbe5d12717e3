//! `candor ui`: the whole of Candor as a web app on this machine, for the partner who never
//! opens a terminal.
//!
//! One process serves server-rendered pages (axum + maud) on a loopback address, runs the sync
//! watcher beside them so pages update live (server-sent events), and answers other `candor`
//! commands on the same home over the local socket, as `sync --watch` does.
//!
//! * [`session`]: the launch token, the session cookie and every request rule (Host, Origin,
//!   form token, response headers).
//! * [`data`]: the only module that reads or writes Candor data; it returns plain view structs.
//! * [`routes`] and the page modules: one route per screen, forms with post/redirect/get.
//! * [`live`]: the change feed behind the server-sent events.

pub mod data;
pub mod live;
mod pages;
mod routes;
mod routes_more;
pub mod session;
mod views;

use crate::home::Home;
use anyhow::{bail, Context as _, Result};
use std::net::SocketAddr;
use std::sync::Arc;

pub use routes::{router, App};

/// The address `candor ui` listens on when none is given: loopback, any free port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:0";

/// Refuses any address that is not loopback: the pages hold the most private words two people
/// write, and nothing but this machine may reach them.
pub fn check_loopback(addr: SocketAddr) -> Result<SocketAddr> {
    if !addr.ip().is_loopback() {
        bail!(
            "`candor ui` listens on this machine only: {} is not a loopback address \
             (use 127.0.0.1:PORT)",
            addr.ip()
        );
    }
    Ok(addr)
}

/// `candor ui`: binds, prints the launch address, opens the browser unless told not to, and
/// serves until Ctrl-C (or `shutdown`).
pub async fn run(
    home: Home,
    listen: Option<SocketAddr>,
    open_browser: bool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<i32> {
    let default: SocketAddr = DEFAULT_LISTEN.parse().context("the default address")?;
    let addr = check_loopback(listen.unwrap_or(default))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    let guard = session::Guard::new(bound)?;
    let url = guard.launch_url();
    let app = Arc::new(App::start(home, guard).await?);
    println!("Candor is open at this address (it works once, in one browser):");
    println!("{url}");
    eprintln!("keep this window open while you use Candor; press Ctrl-C to stop");
    if open_browser {
        open_in_browser(&url);
    }
    let service = router(app.clone());
    let served = axum::serve(listener, service).with_graceful_shutdown(shutdown);
    let result = served.await.context("serving the pages");
    app.stop().await;
    result.map(|()| 0)
}

/// Asks the desktop to open `url` in the default browser; a failure only means the person opens
/// the printed address by hand.
fn open_in_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let started = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if started.is_err() {
        eprintln!("could not start a browser; open the address above by hand");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_accepted() {
        for ok in ["127.0.0.1:0", "127.0.0.1:8080", "[::1]:9000"] {
            assert!(check_loopback(ok.parse().unwrap()).is_ok(), "{ok}");
        }
        for refused in ["0.0.0.0:8080", "192.168.1.2:80", "[::]:80", "10.0.0.1:1"] {
            assert!(
                check_loopback(refused.parse().unwrap()).is_err(),
                "{refused}"
            );
        }
    }
}
