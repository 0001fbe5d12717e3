//! Real-browser testing of `candor ui`: headless Chromium from Debian driven over WebDriver
//! (`chromedriver` + `fantoccini`), `candor ui` processes on loopback, screenshots, console
//! errors and the axe-core accessibility audit (vendored in `tests/assets/axe.min.js`).
//!
//! Chromium and chromedriver must be installed (`apt-get install chromium chromium-driver`;
//! `.ci/run` does it): without them the browser tests fail, they never pass silently.

use super::binary;
use anyhow::{anyhow, bail, Context as _, Result};
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a page may take to show what a test waits for.
pub const WAIT: Duration = Duration::from_secs(30);

/// The viewport sizes every screen is photographed at: a laptop and a phone.
pub const SIZES: [(u32, u32); 2] = [(1280, 800), (390, 844)];

/// axe-core, vendored from npm (`npm pack axe-core`), MPL-2.0.
const AXE: &str = include_str!("../assets/axe.min.js");

/// A running chromedriver on a loopback port it chose itself.
pub struct Chromedriver {
    child: Child,
    url: String,
}

impl Chromedriver {
    /// Starts chromedriver, or fails naming the packages to install.
    pub fn start() -> Result<Self> {
        let mut child = Command::new("chromedriver")
            .args(["--port=0", "--allowed-ips=127.0.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context(
                "chromedriver is not installed: the browser tests need Debian's `chromium` and \
                 `chromium-driver` (apt-get install chromium chromium-driver; .ci/run does it)",
            )?;
        let stdout = child.stdout.take().context("chromedriver's output")?;
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            let line = lines
                .next()
                .ok_or_else(|| anyhow!("chromedriver exited before it listened"))??;
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                break rest.trim_end_matches('.').trim().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Ok(Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One headless Chromium with a fresh profile.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Opens a new Chromium through `driver`.
    pub async fn open(driver: &Chromedriver) -> Result<Self> {
        let profile = tempfile::tempdir()?;
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--lang=en-US".into(),
            "--window-size=1280,800".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = Capabilities::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium()?, "args": args }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .context("starting Chromium over WebDriver")?;
        Ok(Browser {
            client,
            _profile: profile,
        })
    }

    /// Goes to `url` and waits for the page.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("opening {url}"))
    }

    /// The path of the page shown.
    pub async fn path(&self) -> Result<String> {
        Ok(self.client.current_url().await?.path().to_string())
    }

    /// Types `text` into the field with id `id` (after clearing it).
    pub async fn fill(&self, id: &str, text: &str) -> Result<()> {
        let field = self
            .client
            .find(Locator::Id(id))
            .await
            .with_context(|| format!("field #{id}"))?;
        field.clear().await?;
        field.send_keys(text).await?;
        Ok(())
    }

    /// Chooses `value` in the select with id `id`.
    pub async fn choose(&self, id: &str, value: &str) -> Result<()> {
        let select = self.client.find(Locator::Id(id)).await?;
        select.select_by_value(value).await?;
        Ok(())
    }

    /// Clicks the first button whose words are exactly `label`.
    pub async fn press(&self, label: &str) -> Result<()> {
        let xpath =
            format!("//button[normalize-space()='{label}'] | //a[normalize-space()='{label}']");
        // A live update may swap the part of the page holding the button between finding and
        // clicking it: find it again then.
        for _ in 0..5 {
            let button = self
                .client
                .wait()
                .at_most(WAIT)
                .for_element(Locator::XPath(&xpath))
                .await
                .with_context(|| format!("button {label:?}"))?;
            match button.click().await {
                Err(e) if e.is_stale_element_reference() => {}
                other => return Ok(other?),
            }
        }
        bail!("the button {label:?} kept being replaced")
    }

    /// Waits, without reloading, until an element matching `xpath` is on the page.
    pub async fn wait_for(&self, xpath: &str) -> Result<()> {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::XPath(xpath))
            .await
            .with_context(|| format!("waiting for {xpath}"))?;
        Ok(())
    }

    /// Waits until the browser shows the page at `path`.
    pub async fn wait_for_path(&self, path: &str) -> Result<()> {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if self.path().await? == path {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "the browser stayed on {} instead of {path}, showing:\n{}",
                    self.path().await?,
                    self.text().await.unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page's text as shown.
    pub async fn text(&self) -> Result<String> {
        Ok(self.client.find(Locator::Css("body")).await?.text().await?)
    }

    /// The page's markup.
    pub async fn source(&self) -> Result<String> {
        Ok(self.client.source().await?)
    }

    /// Console messages of level SEVERE since the last call (errors, CSP refusals, failed
    /// loads).
    pub async fn console_errors(&self) -> Result<Vec<String>> {
        let logs = self.client.issue_cmd(BrowserLog).await?;
        Ok(logs
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_string())
            .collect())
    }

    /// Serious and critical axe-core violations on the page shown.
    pub async fn accessibility_violations(&self) -> Result<Vec<String>> {
        self.client
            .execute(AXE, vec![])
            .await
            .context("loading axe-core")?;
        let script = r#"
            const done = arguments[arguments.length - 1];
            axe.run(document, { resultTypes: ["violations"] })
              .then((r) => done(r.violations
                .filter((v) => v.impact === "serious" || v.impact === "critical")
                .map((v) => v.id + " (" + v.impact + "): " + v.help + " at "
                  + v.nodes.map((n) => n.target.join(" ")).join(", "))))
              .catch((e) => done(["axe failed: " + e]));
        "#;
        let found = self.client.execute_async(script, vec![]).await?;
        Ok(found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect())
    }

    /// Photographs the page at every size of [`SIZES`] into `target/ui-screenshots/NAME-WxH.png`.
    pub async fn screenshots(&self, name: &str) -> Result<()> {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)?;
        for (width, height) in SIZES {
            self.set_viewport(width, height).await?;
            let png = self.client.screenshot().await?;
            std::fs::write(dir.join(format!("{name}-{width}x{height}.png")), png)?;
        }
        let (width, height) = SIZES[0];
        self.set_viewport(width, height).await?;
        Ok(())
    }

    /// Sizes the window so that the page itself (the viewport) is `width` × `height`.
    async fn set_viewport(&self, width: u32, height: u32) -> Result<()> {
        self.client.set_window_size(width, height).await?;
        let inner = self
            .client
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await?;
        let read = |i: usize| inner[i].as_u64().and_then(|v| u32::try_from(v).ok());
        let (Some(inner_width), Some(inner_height)) = (read(0), read(1)) else {
            bail!("the browser did not report its viewport: {inner}");
        };
        let outer_width = width + width.saturating_sub(inner_width);
        let outer_height = height + height.saturating_sub(inner_height);
        self.client
            .set_window_size(outer_width, outer_height)
            .await?;
        Ok(())
    }

    /// Screenshots, accessibility audit and console check of the screen shown.
    pub async fn check_screen(&self, name: &str) -> Result<()> {
        self.screenshots(name).await?;
        let violations = self.accessibility_violations().await?;
        if !violations.is_empty() {
            bail!("accessibility violations on {name}: {violations:#?}");
        }
        let errors = self.console_errors().await?;
        if !errors.is_empty() {
            bail!("console errors on {name}: {errors:#?}");
        }
        Ok(())
    }

    /// Ends the browser session.
    pub async fn close(self) -> Result<()> {
        self.client.close().await?;
        Ok(())
    }
}

/// Where screenshots go: `target/ui-screenshots/` of the workspace.
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots")
}

fn chromium() -> Result<String> {
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(candidate).exists() {
            return Ok(candidate.to_string());
        }
    }
    bail!("Chromium is not installed: apt-get install chromium chromium-driver (.ci/run does it)")
}

/// chromedriver's endpoint for the browser console log.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": "browser" }).to_string()),
        )
    }
}

/// A running `candor ui` on a free loopback port.
pub struct Ui {
    child: Child,
    /// The launch address it printed (one-time token included).
    pub launch: String,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Ui {
    /// Starts `candor ui --no-open` on `home`.
    pub fn start(home: &Path) -> Result<Self> {
        let mut child = Command::new(binary("candor"))
            .arg("--home")
            .arg(home)
            .args(["ui", "--no-open", "--listen", "127.0.0.1:0"])
            .env("CANDOR_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting candor ui")?;
        let stdout = child.stdout.take().context("candor ui's output")?;
        let mut lines = BufReader::new(stdout).lines();
        let launch = loop {
            let line = lines
                .next()
                .ok_or_else(|| anyhow!("candor ui exited before printing its address"))??;
            if line.starts_with("http://") {
                break line.trim().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let base = launch
            .split("/launch")
            .next()
            .unwrap_or_default()
            .to_string();
        Ok(Ui {
            child,
            launch,
            base,
        })
    }

    /// The full address of `path` on this server.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server (SIGTERM, so it flushes and removes its socket) and waits for it.
    pub fn stop(mut self) -> Result<()> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()?;
        if !status.success() {
            bail!("could not stop candor ui");
        }
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
