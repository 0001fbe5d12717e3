//! HTTP-level tests of `candor ui`'s session and request rules: each rule of
//! `candor::ui::session` has a test that fails if the rule breaks.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use candor::home::Home;
use candor::ui::session::{Guard, HEADERS};
use candor::ui::{router, App};
use http_body_util::BodyExt as _;
use std::sync::Arc;
use tower::ServiceExt as _;

struct Ui {
    _dir: tempfile::TempDir,
    app: Arc<App>,
    host: String,
}

impl Ui {
    async fn start() -> Ui {
        let dir = tempfile::tempdir().unwrap();
        // A real free loopback port, so the Host rule is checked against a real address.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let guard = Guard::new(addr).unwrap();
        let home = Home::new(dir.path().join("home"));
        let app = Arc::new(App::start(home, guard).await.unwrap());
        Ui {
            _dir: dir,
            app,
            host: addr.to_string(),
        }
    }

    async fn send(&self, request: Request<Body>) -> Response<Body> {
        router(self.app.clone()).oneshot(request).await.unwrap()
    }

    fn launch_path(&self) -> String {
        let url = self.app.guard().launch_url();
        url.split_once(&self.host).unwrap().1.to_string()
    }

    /// Trades the launch token for the session cookie ("name=value").
    async fn login(&self) -> String {
        let response = self.send(self.get(&self.launch_path(), None)).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
        cookie.split(';').next().unwrap().to_string()
    }

    fn get(&self, path: &str, cookie: Option<&str>) -> Request<Body> {
        let mut request = Request::get(path).header(header::HOST, &self.host);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.body(Body::empty()).unwrap()
    }

    fn post(&self, path: &str, cookie: &str, origin: Option<&str>, form: &str) -> Request<Body> {
        let mut request = Request::post(path)
            .header(header::HOST, &self.host)
            .header(header::COOKIE, cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        request.body(Body::from(form.to_string())).unwrap()
    }

    fn origin(&self) -> String {
        format!("http://{}", self.host)
    }

    /// The form token of the session, read from a page's form.
    async fn form_token(&self, cookie: &str) -> String {
        let page = text(self.send(self.get("/welcome", Some(cookie))).await).await;
        let at = page.find("name=\"form_token\" value=\"").unwrap() + 25;
        page[at..at + 64].to_string()
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let app = self.app.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(app.stop());
        })
        .join();
    }
}

async fn text(response: Response<Body>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_session_get_401_and_no_content() {
    let ui = Ui::start().await;
    for path in [
        "/",
        "/welcome",
        "/today",
        "/journal",
        "/events",
        "/assets/app.js",
        "/nope",
    ] {
        let response = ui.send(ui.get(path, None)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body = text(response).await;
        assert!(
            !body.contains("<form") && !body.contains("<html"),
            "{path}: {body}"
        );
    }
    let wrong = ui
        .send(ui.get("/today", Some("candor_session_1=forged")))
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_launch_token_works_once_and_gives_a_strict_http_only_cookie() {
    let ui = Ui::start().await;
    let launch = ui.launch_path();
    let wrong = ui.send(ui.get("/launch?token=00", None)).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let first = ui.send(ui.get(&launch, None)).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let cookie = first.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    let second = ui.send(ui.get(&launch, None)).await;
    assert_eq!(
        second.status(),
        StatusCode::UNAUTHORIZED,
        "a reused launch token is dead"
    );
    assert!(second.headers().get(header::SET_COOKIE).is_none());
    let session = cookie.split(';').next().unwrap();
    let page = ui.send(ui.get("/welcome", Some(session))).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(text(page).await.contains("Welcome to Candor"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_is_refused_even_with_the_session() {
    let ui = Ui::start().await;
    let cookie = ui.login().await;
    let port = ui.host.rsplit(':').next().unwrap().to_string();
    for host in [
        format!("evil.example:{port}"),
        "127.0.0.1:1".to_string(),
        format!("localhost.evil.example:{port}"),
    ] {
        let request = Request::get("/welcome")
            .header(header::HOST, &host)
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap();
        let response = ui.send(request).await;
        assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST, "{host}");
        assert!(!text(response).await.contains("<form"));
    }
    let launch = Request::get(ui.launch_path())
        .header(header::HOST, format!("evil.example:{port}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        ui.send(launch).await.status(),
        StatusCode::MISDIRECTED_REQUEST
    );
    let localhost = Request::get("/welcome")
        .header(header::HOST, format!("localhost:{port}"))
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    assert_eq!(ui.send(localhost).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_need_the_same_origin_and_the_form_token() {
    let ui = Ui::start().await;
    let cookie = ui.login().await;
    let token = ui.form_token(&cookie).await;
    let form = format!("form_token={token}&name=Alex");
    let origin = ui.origin();

    let cross = ui
        .send(ui.post("/welcome", &cookie, Some("http://evil.example"), &form))
        .await;
    assert_eq!(cross.status(), StatusCode::FORBIDDEN, "cross-site Origin");
    let null = ui
        .send(ui.post("/welcome", &cookie, Some("null"), &form))
        .await;
    assert_eq!(null.status(), StatusCode::FORBIDDEN, "Origin: null");
    let mut no_origin = ui.post("/welcome", &cookie, None, &form);
    no_origin
        .headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    assert_eq!(ui.send(no_origin).await.status(), StatusCode::FORBIDDEN);
    let bare = ui.send(ui.post("/welcome", &cookie, None, &form)).await;
    assert_eq!(
        bare.status(),
        StatusCode::FORBIDDEN,
        "neither Origin nor Sec-Fetch-Site"
    );

    let missing = ui
        .send(ui.post("/welcome", &cookie, Some(&origin), "name=Alex"))
        .await;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN, "no form token");
    let forged = ui
        .send(ui.post(
            "/welcome",
            &cookie,
            Some(&origin),
            &format!("form_token={}&name=Alex", "0".repeat(64)),
        ))
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN, "wrong form token");
    let not_a_form = Request::post("/welcome")
        .header(header::HOST, &ui.host)
        .header(header::COOKIE, &cookie)
        .header(header::ORIGIN, &origin)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(format!("{{\"form_token\":\"{token}\"}}")))
        .unwrap();
    assert_eq!(ui.send(not_a_form).await.status(), StatusCode::FORBIDDEN);
    // Nothing of the refused requests was written.
    let still = ui.send(ui.get("/", Some(&cookie))).await;
    assert_eq!(still.headers()[header::LOCATION], "/welcome");

    let ok = ui
        .send(ui.post("/welcome", &cookie, Some(&origin), &form))
        .await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(ok.headers()[header::LOCATION], "/pair");
    let mut same_site = ui.post(
        "/journal",
        &cookie,
        None,
        &format!("form_token={token}&text=only+mine"),
    );
    same_site
        .headers_mut()
        .insert("sec-fetch-site", "same-origin".parse().unwrap());
    assert_eq!(ui.send(same_site).await.status(), StatusCode::SEE_OTHER);
    let journal = text(ui.send(ui.get("/journal", Some(&cookie))).await).await;
    assert!(journal.contains("only mine"), "{journal}");
    assert!(journal.contains("Only you can read this."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let ui = Ui::start().await;
    let unauthenticated = ui.send(ui.get("/today", None)).await;
    let cookie = ui.login().await;
    let page = ui.send(ui.get("/welcome", Some(&cookie))).await;
    let asset = ui.send(ui.get("/assets/app.js", Some(&cookie))).await;
    for response in [&unauthenticated, &page, &asset] {
        for (name, value) in HEADERS {
            assert_eq!(response.headers()[*name], *value, "{name}");
        }
    }
    let headers = page.headers();
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"));
    assert!(csp.contains("script-src 'self'"));
    assert!(!csp.contains("unsafe-inline"));
    let html = text(page).await;
    assert!(!html.contains("<script>"), "no inline script");
    assert!(
        !html.contains("style="),
        "no inline style (the CSP would refuse it)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_works_before_pairing_and_keeps_edits() {
    let ui = Ui::start().await;
    let cookie = ui.login().await;
    let token = ui.form_token(&cookie).await;
    let origin = ui.origin();
    let post = |path: &str, form: String| ui.post(path, &cookie, Some(&origin), &form);
    let created = ui
        .send(post("/welcome", format!("form_token={token}&name=Sam")))
        .await;
    assert_eq!(created.headers()[header::LOCATION], "/pair");
    let written = ui
        .send(post(
            "/journal",
            format!("form_token={token}&text=first+words"),
        ))
        .await;
    assert_eq!(written.headers()[header::LOCATION], "/journal");
    let page = text(ui.send(ui.get("/journal", Some(&cookie))).await).await;
    let marker = "name=\"id\" value=\"";
    let at = page.find(marker).unwrap() + marker.len();
    let id = &page[at..at + 32];
    let edited = ui
        .send(post(
            "/journal/edit",
            format!("form_token={token}&id={id}&text=better+words"),
        ))
        .await;
    assert_eq!(edited.status(), StatusCode::SEE_OTHER);
    let page = text(ui.send(ui.get("/journal", Some(&cookie))).await).await;
    assert!(page.contains("better words"), "{page}");
    assert!(page.contains("2 versions"), "{page}");
    // Screens that need a partner send the person to pairing first.
    let today = ui.send(ui.get("/today", Some(&cookie))).await;
    assert_eq!(today.headers()[header::LOCATION], "/pair");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_bundle_made_in_the_page_restores_in_a_new_home_and_passphrases_change() {
    let old = Ui::start().await;
    let cookie = old.login().await;
    let token = old.form_token(&cookie).await;
    let origin = old.origin();
    let post = |path: &str, form: String| old.post(path, &cookie, Some(&origin), &form);
    old.send(post("/welcome", format!("form_token={token}&name=Sam")))
        .await;
    old.send(post(
        "/journal",
        format!("form_token={token}&text=words+worth+keeping"),
    ))
    .await;
    // A passphrase set, then changed, from the settings screen.
    let set = old
        .send(post(
            "/settings/passphrase",
            format!("form_token={token}&new=purple+kettle+rain&again=purple+kettle+rain"),
        ))
        .await;
    assert_eq!(set.headers()[header::LOCATION], "/settings");
    let page = text(old.send(old.get("/settings", Some(&cookie))).await).await;
    assert!(page.contains("Passphrase saved"), "{page}");
    assert!(page.contains("A passphrase protects your data"), "{page}");
    old.send(post(
        "/settings/passphrase",
        format!("form_token={token}&current=wrong+words+here&new=a+b+c+d+e+f&again=a+b+c+d+e+f"),
    ))
    .await;
    let page = text(old.send(old.get("/settings", Some(&cookie))).await).await;
    assert!(
        !page.contains("Passphrase saved"),
        "a wrong current passphrase changes nothing"
    );

    let bundle = old._dir.path().join("sam.bundle");
    let made = old
        .send(post(
            "/settings/bundle",
            format!(
                "form_token={token}&path={}&passphrase=bundle+pass+phrase",
                bundle.display()
            ),
        ))
        .await;
    assert_eq!(made.headers()[header::LOCATION], "/settings");
    assert!(bundle.exists(), "the bundle was written");
    old.app.stop().await;

    let new = Ui::start().await;
    let cookie = new.login().await;
    let token = new.form_token(&cookie).await;
    let origin = new.origin();
    let post = |path: &str, form: String| new.post(path, &cookie, Some(&origin), &form);
    let wrong = new
        .send(post(
            "/welcome/restore",
            format!(
                "form_token={token}&path={}&passphrase=not+the+one",
                bundle.display()
            ),
        ))
        .await;
    assert_eq!(wrong.headers()[header::LOCATION], "/welcome");
    let restored = new
        .send(post(
            "/welcome/restore",
            format!(
                "form_token={token}&path={}&passphrase=bundle+pass+phrase",
                bundle.display()
            ),
        ))
        .await;
    assert_eq!(restored.headers()[header::LOCATION], "/today");
    let page = text(new.send(new.get("/journal", Some(&cookie))).await).await;
    assert!(page.contains("words worth keeping"), "{page}");
}
