//! Black-box tests of the graceful stop (SPEC section 7): the real `gateway` binary
//! as a child process, real signals, real sockets. Synchronisation is by events
//! (a log line, a request reaching a server, a status flipping), never by sleeping.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_jwt::dev::{default_users, DevIssuer};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A running gateway and everything it logged so far.
struct Gateway {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
    lines: mpsc::Receiver<String>,
}

impl Gateway {
    fn start(env: &[(&str, String)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GRAPHQL_SERVER_PORT", "0")
            // Debug for the gateway: "request received" is how tests know a request
            // is in flight.
            .env("RUST_LOG", "info,gateway=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn gateway");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for stream in [Box::new(stdout) as Box<dyn Read + Send>, Box::new(stderr)] {
            let (tx, log) = (tx.clone(), Arc::clone(&log));
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().unwrap().push_str(&line);
                    log.lock().unwrap().push('\n');
                    let _ = tx.send(line);
                }
            });
        }
        let mut gw = Gateway {
            child,
            port: 0,
            log,
            lines,
        };
        let ready = gw.wait_for_line("ready: GraphQL");
        gw.port = ready
            .split("port=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {ready:?}"));
        gw
    }

    fn wait_for_line(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "no log line with {needle:?}; log:\n{}",
                    self.log.lock().unwrap()
                ),
            }
        }
    }

    /// Waits until the gateway logged that a request for `path` arrived.
    fn wait_for_request(&mut self, path: &str) {
        loop {
            let line = self.wait_for_line("request received");
            if line.contains(path) {
                return;
            }
        }
    }

    fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).expect("signal");
    }

    /// Waits for exit (bounded so a hang fails) and returns the code.
    fn exit_code(&mut self) -> i32 {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("gateway did not exit; log:\n{}", self.log.lock().unwrap());
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A key server that tells the test when a fetch arrives and answers only when the
/// test says so: the slow dependency that keeps a request in flight.
struct SlowKeyServer {
    url: String,
    arrived: mpsc::Receiver<()>,
    release: mpsc::Sender<()>,
}

fn slow_key_server(pem: String) -> SlowKeyServer {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/publickey",
        listener.local_addr().unwrap().port()
    );
    let (arrived_tx, arrived) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = arrived_tx.send(());
            if release_rx.recv().is_err() {
                return;
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                pem.len(),
                pem
            );
        }
    });
    SlowKeyServer {
        url,
        arrived,
        release,
    }
}

fn issuer() -> DevIssuer {
    DevIssuer::generate(default_users()).unwrap()
}

fn token(issuer: &DevIssuer, user: &str) -> String {
    issuer.issue(issuer.user(user).unwrap()).unwrap()
}

/// One HTTP/1.1 exchange on an open keep-alive connection; returns the raw head.
fn exchange(stream: &mut TcpStream, path: &str) -> String {
    write!(stream, "GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        head.push_str(&line);
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    head
}

fn status_of(url: &str) -> u16 {
    let client = reqwest::blocking::Client::new();
    client
        .get(url)
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// A gateway with one authenticated request held in flight: the request reached the
/// gateway, which waits for the verification key that the key server holds back
/// (the background refresher asked for it at startup).
struct InFlight {
    gw: Gateway,
    keys: SlowKeyServer,
    request: std::thread::JoinHandle<reqwest::Result<(u16, String)>>,
}

fn with_request_in_flight(env: &[(&str, String)]) -> InFlight {
    let issuer = issuer();
    let keys = slow_key_server(issuer.public_pem().to_string());
    let mut all = vec![("PUBLIC_JWT_KEY_URL", keys.url.clone())];
    all.extend(env.iter().cloned());
    let mut gw = Gateway::start(&all);
    let url = gw.url("/graphql");
    let t = token(&issuer, "user3");
    let request = std::thread::spawn(move || {
        reqwest::blocking::Client::new()
            .post(url)
            .bearer_auth(t)
            .json(&serde_json::json!({"query": "{ books { title } }"}))
            .timeout(Duration::from_secs(60))
            .send()
            .map(|r| (r.status().as_u16(), r.text().unwrap_or_default()))
    });
    keys.arrived
        .recv_timeout(Duration::from_secs(30))
        .expect("key fetch");
    gw.wait_for_request("/graphql");
    InFlight { gw, keys, request }
}

#[test]
fn a_request_in_flight_at_sigterm_completes_and_the_exit_is_clean() {
    let InFlight {
        mut gw,
        keys,
        request,
    } = with_request_in_flight(&[]);
    gw.signal(Signal::SIGTERM);
    gw.wait_for_line("shutdown started");
    keys.release.send(()).unwrap();
    let (status, body) = request
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("no response: {e}; log:\n{}", gw.log()));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Pride and Prejudice"), "{body}");
    assert_eq!(gw.exit_code(), 0, "{}", gw.log());
    assert!(gw.log().contains("shutdown complete"));
}

#[test]
fn keep_alive_clients_get_connection_close_and_readiness_fails_first() {
    let mut gw = Gateway::start(&[("SHUTDOWN_DELAY", "3".into())]);
    let mut conn = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let first = exchange(&mut conn, "/health");
    assert!(first.starts_with("HTTP/1.1 200"));
    assert!(
        !first.to_ascii_lowercase().contains("connection: close"),
        "{first}"
    );

    gw.signal(Signal::SIGTERM);
    gw.wait_for_line("shutdown started");
    // Readiness fails at once; liveness holds; requests are still served.
    assert_eq!(status_of(&gw.url("/health/ready")), 503);
    assert_eq!(status_of(&gw.url("/health/live")), 200);

    let second = exchange(&mut conn, "/health");
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    assert!(
        second.to_ascii_lowercase().contains("connection: close"),
        "{second}"
    );
    let mut rest = Vec::new();
    let n = conn.read_to_end(&mut rest).unwrap();
    assert_eq!(n, 0, "the server closed the connection after that response");
    assert_eq!(gw.exit_code(), 0, "{}", gw.log());
}

#[test]
fn websocket_subscribers_get_close_1001() {
    use tungstenite::client::IntoClientRequest;
    let mut gw = Gateway::start(&[]);
    let token = reqwest::blocking::get(gw.url("/dev/token/user3"))
        .unwrap()
        .text()
        .unwrap();
    let mut req = format!("ws://127.0.0.1:{}/graphql", gw.port)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tungstenite::connect(req).expect("upgrade");
    let send = |ws: &mut tungstenite::WebSocket<_>, v: serde_json::Value| {
        ws.send(tungstenite::Message::Text(v.to_string().into()))
            .unwrap()
    };
    send(
        &mut ws,
        serde_json::json!({"type": "connection_init", "payload": {"authToken": token}}),
    );
    let ack = ws.read().unwrap();
    assert!(ack.to_text().unwrap().contains("connection_ack"));
    send(
        &mut ws,
        serde_json::json!({"id": "1", "type": "subscribe", "payload": {"query": "subscription { checkout { id } }"}}),
    );
    gw.signal(Signal::SIGTERM);
    let close = loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(frame)) => break frame,
            Ok(_) => continue,
            Err(e) => panic!("no close frame: {e}"),
        }
    };
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1001));
    assert_eq!(gw.exit_code(), 0, "{}", gw.log());
}

/// Subscribers over HTTP streams get the protocol's end on SIGTERM (SSE's
/// `complete` event, multipart's closing boundary), and the exit is clean.
#[test]
fn http_stream_subscribers_get_their_end_on_sigterm() {
    use std::io::Read;
    let mut gw = Gateway::start(&[]);
    let token = reqwest::blocking::get(gw.url("/dev/token/user3"))
        .unwrap()
        .text()
        .unwrap();
    let client = reqwest::blocking::Client::new();
    let open = |accept: &str| {
        client
            .post(gw.url("/graphql"))
            .bearer_auth(&token)
            .header("accept", accept)
            .json(&serde_json::json!({"query": "subscription { checkout { id } }"}))
            .send()
            .unwrap()
    };
    let mut sse = open("text/event-stream");
    let mut multipart = open(r#"multipart/mixed;subscriptionSpec="1.0",application/json"#);
    // Both streams are open once their first bytes (a keep-alive) arrived.
    let mut first = [0u8; 1];
    sse.read_exact(&mut first).unwrap();
    multipart.read_exact(&mut first).unwrap();
    gw.signal(Signal::SIGTERM);
    let mut sse_text = String::new();
    sse.read_to_string(&mut sse_text).unwrap();
    let mut multipart_text = String::new();
    multipart.read_to_string(&mut multipart_text).unwrap();
    assert!(
        sse_text.ends_with("event: complete\ndata:\n\n"),
        "{sse_text:?}"
    );
    assert!(
        multipart_text.ends_with("\r\n--graphql--\r\n"),
        "{multipart_text:?}"
    );
    assert_eq!(gw.exit_code(), 0, "{}", gw.log());
}

#[test]
fn an_idle_stop_exits_zero() {
    let mut gw = Gateway::start(&[]);
    gw.signal(Signal::SIGTERM);
    assert_eq!(gw.exit_code(), 0);
    assert!(gw.log().contains("shutdown complete"));
}

#[test]
fn a_drain_past_the_deadline_exits_one_naming_what_did_not_finish() {
    let InFlight { mut gw, keys, .. } = with_request_in_flight(&[("SHUTDOWN_TIMEOUT", "1".into())]);
    gw.signal(Signal::SIGTERM);
    assert_eq!(gw.exit_code(), 1, "{}", gw.log());
    let log = gw.log();
    assert!(
        log.contains("forced exit") && log.contains("http-server"),
        "{log}"
    );
    drop(keys);
}

#[test]
fn a_second_signal_exits_at_once() {
    let InFlight { mut gw, keys, .. } = with_request_in_flight(&[]);
    gw.signal(Signal::SIGTERM);
    gw.wait_for_line("shutdown started");
    gw.signal(Signal::SIGINT);
    assert_eq!(gw.exit_code(), 1, "{}", gw.log());
    assert!(gw.log().contains("second signal"));
    drop(keys);
}

#[test]
fn on_real_services_every_closeable_closes_in_order() {
    let s = testkit::services();
    let env: Vec<(&str, String)> = [
        "MYSQL_HOST",
        "MYSQL_PORT",
        "MYSQL_USER",
        "MYSQL_PASSWORD",
        "MYSQL_DATABASE",
        "MONGO_URL",
        "MONGO_DATABASE",
        "KAFKA_BROKERS",
        "PUBLIC_JWT_KEY_URL",
    ]
    .iter()
    .map(|k| (*k, s.var(k).to_string()))
    .collect();
    let mut gw = Gateway::start(&env);
    // Ready once its first JWT key is fetched (in the background, at start-up).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while status_of(&gw.url("/health/ready")) != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "never ready: {}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    gw.signal(Signal::SIGTERM);
    assert_eq!(gw.exit_code(), 0, "{}", gw.log());
    let log = gw.log();
    let order: Vec<usize> = [
        "kafka-consumer",
        "outbox-relay",
        "kafka-producer",
        "mysql-pool",
        "mongodb-client",
    ]
    .iter()
    .map(|name| {
        log.find(&format!("closed closeable={name}"))
            .unwrap_or_else(|| panic!("{name} did not close:\n{log}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "close order: {log}");
}

/// A database that refuses the start (here the password) is one log line naming the
/// setting, and exit 1: no panic, no raw SQL error over several lines.
#[test]
fn a_refused_database_sign_in_exits_one_with_one_line() {
    let s = testkit::services();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
    cmd.env_clear().env("APP_ENV", "production");
    for k in [
        "MYSQL_HOST",
        "MYSQL_PORT",
        "MYSQL_USER",
        "MYSQL_DATABASE",
        "MONGO_URL",
        "MONGO_DATABASE",
        "KAFKA_BROKERS",
        "PUBLIC_JWT_KEY_URL",
    ] {
        cmd.env(k, s.var(k));
    }
    let out = cmd.env("MYSQL_PASSWORD", "0123-wrong").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let failed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("\"level\":\"ERROR\""))
        .collect();
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(
        failed[0].contains("start-up failed") && failed[0].contains("MYSQL_PASSWORD"),
        "{}",
        failed[0]
    );
    assert!(
        !stdout.contains("0123-wrong"),
        "the password is never logged"
    );
    assert!(String::from_utf8_lossy(&out.stderr).trim().is_empty());
}

#[test]
fn missing_configuration_exits_one_listing_every_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env_clear()
        .env("APP_ENV", "production")
        .env("MYSQL_HOST", "db")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for name in [
        "MYSQL_USER",
        "MYSQL_PASSWORD",
        "MONGO_URL",
        "KAFKA_BROKERS",
        "PUBLIC_JWT_KEY_URL",
    ] {
        assert!(err.contains(name), "{name} not listed: {err}");
    }
    assert!(
        !err.contains("MYSQL_HOST\n"),
        "a present value is not listed"
    );
}
