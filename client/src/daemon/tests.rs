//! The local socket: typed requests both ways, limits, permissions from the first moment.

use super::*;
use crate::cli::LogCommand;
use candor_shared::at_rest::StorageKey;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;

struct Served {
    _dir: tempfile::TempDir,
    home: Home,
    serving: Option<Serving>,
}

/// The umask is the process's, shared by every test thread: binding sets it for a moment, and
/// reading it means setting it. Tests that bind or read it take turns.
static UMASK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn served() -> Served {
    let _turn = UMASK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    served_holding_umask()
}

fn served_holding_umask() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path().join("home"));
    home.create().unwrap();
    let store =
        crate::store::Store::open(&home.store_dir(), Arc::new(StorageKey::from_bytes([1; 32])))
            .unwrap();
    let bound = bind(&home).unwrap();
    let serving = spawn(
        bound,
        home.clone(),
        Arc::new(store),
        Arc::new(tokio::sync::Notify::new()),
    );
    Served {
        _dir: dir,
        home,
        serving: Some(serving),
    }
}

fn current_umask() -> u32 {
    let mask = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    rustix::process::umask(mask);
    mask.as_raw_mode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_command_and_a_status_query_are_answered() {
    let turn = UMASK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let before = current_umask();
    let s = served_holding_umask();
    // The socket is the user's alone, and binding it left the process's umask as it was.
    let mode = std::fs::metadata(s.home.socket_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(current_umask(), before);
    drop(turn);

    let home = s.home.clone();
    let (status, output) = tokio::task::spawn_blocking(move || {
        let status = status(&home).unwrap().unwrap();
        let request = Forwarded {
            command: Command::Log(LogCommand::List {
                json: false,
                limit: Some(3),
            }),
            cwd: std::env::temp_dir(),
            stdin: None,
            passphrase: None,
        };
        (status, forward(&home, &request).unwrap().unwrap())
    })
    .await
    .unwrap();
    assert_eq!(status.pid, std::process::id());
    assert_eq!(status.home, s.home.root());
    // The command ran in the serving process, against its (empty) home.
    assert_eq!(output.code, 1);
    assert!(output.stderr.contains("no device identity"), "{output:?}");
}

/// Sends raw bytes, returns the answer.
fn raw(home: &Home, bytes: &[u8]) -> Answer {
    let mut stream = UnixStream::connect(home.socket_path()).unwrap();
    stream.write_all(bytes).unwrap();
    read_frame(&mut stream, MAX_ANSWER).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_versions_oversized_and_malformed_requests_are_refused_unread() {
    let s = served();
    let home = s.home.clone();
    let answers = tokio::task::spawn_blocking(move || {
        let mut old = vec![0, 1];
        old.extend_from_slice(&5u32.to_be_bytes());
        old.extend_from_slice(b"hello");
        let mut huge = LOCAL_PROTOCOL.to_be_bytes().to_vec();
        huge.extend_from_slice(&(MAX_REQUEST + 1).to_be_bytes());
        let mut junk = LOCAL_PROTOCOL.to_be_bytes().to_vec();
        junk.extend_from_slice(&3u32.to_be_bytes());
        junk.extend_from_slice(&[0xff, 0xff, 0xff]);
        [raw(&home, &old), raw(&home, &huge), raw(&home, &junk)]
    })
    .await
    .unwrap();
    let reasons: Vec<String> = answers
        .into_iter()
        .map(|a| match a {
            Answer::Refused(why) => why,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(reasons[0].contains("local protocol 1"), "{}", reasons[0]);
    assert!(reasons[1].contains("over the limit"), "{}", reasons[1]);
    assert!(reasons[2].contains("malformed"), "{}", reasons[2]);
    // The sending side refuses too: an answer over the limit is never read into memory.
    let mut frame = LOCAL_PROTOCOL.to_be_bytes().to_vec();
    frame.extend_from_slice(&(MAX_ANSWER + 1).to_be_bytes());
    assert!(matches!(
        read_frame::<Answer>(&mut frame.as_slice(), MAX_ANSWER),
        Err(FrameError::TooLarge(_))
    ));
    // Trailing bytes after a frame are not part of it; a short frame is an error.
    assert!(read_frame::<Answer>(&mut &frame[..4], MAX_ANSWER).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_is_refused_and_the_socket_goes_when_serving_stops() {
    let mut s = served();
    let err = bind(&s.home).err().unwrap();
    assert!(err.to_string().contains("already running"), "{err}");
    drop(s.serving.take());
    assert!(!s.home.socket_path().exists());
    // A stale socket file (a crashed watcher) is replaced.
    std::os::unix::net::UnixListener::bind(s.home.socket_path()).unwrap();
    drop(bind(&s.home).unwrap());
}

#[test]
fn a_connection_from_this_user_passes_the_peer_check() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (a, _b) = tokio::net::UnixStream::pair().unwrap();
        assert!(same_user(&a));
    });
}
