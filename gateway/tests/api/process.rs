//! The `gateway` binary as a child process, on a test's databases or its embedded
//! stores: for cases that kill it, send it signals or measure its memory. Its log
//! is kept for assertions.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use testkit::SqlServer;

/// The running binary; killed when dropped.
pub struct Process {
    child: Child,
    pub base: String,
    pub port: u16,
    log: Arc<Mutex<String>>,
}

impl Process {
    /// Starts it on the harness's services with these databases and `env` on top;
    /// returns once it logs that it is ready.
    pub fn start(
        server: SqlServer,
        mysql_database: &str,
        mongo_database: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let s = testkit::services();
        let mut command = Self::command();
        command
            .env("MYSQL_HOST", server.host())
            .env("MYSQL_PORT", server.port().to_string())
            .env("MYSQL_DATABASE", mysql_database)
            .env("MONGO_DATABASE", mongo_database)
            .envs(
                [
                    "MYSQL_USER",
                    "MYSQL_PASSWORD",
                    "MONGO_URL",
                    "KAFKA_BROKERS",
                    "PUBLIC_JWT_KEY_URL",
                ]
                .map(|k| (k, s.var(k))),
            )
            .envs(env.iter().copied());
        Self::spawn(command)
    }

    /// Starts it on its embedded stores (no services) with `env`; returns once it
    /// logs that it is ready.
    pub fn embedded(env: &[(&str, &str)]) -> Self {
        let mut command = Self::command();
        command.envs(env.iter().copied());
        Self::spawn(command)
    }

    /// The binary with a clean environment, on a free port.
    fn command() -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("GRAPHQL_SERVER_PORT", "0");
        command
    }

    fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gateway");
        // Drained for the process's whole life (a full pipe would block its logging).
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::channel();
        let streams: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("piped")),
            Box::new(child.stderr.take().expect("piped")),
        ];
        for stream in streams {
            let (tx, log) = (tx.clone(), Arc::clone(&log));
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Ok(mut log) = log.lock() {
                        log.push_str(&line);
                        log.push('\n');
                    }
                    let _ = tx.send(line);
                }
            });
        }
        let port = loop {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .expect("the gateway logs that it is ready");
            if line.contains("ready: GraphQL") {
                let port = line.split("port=").nth(1).and_then(|rest| {
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse::<u16>().ok()
                });
                break port.unwrap_or_else(|| panic!("no port in {line:?}"));
            }
        };
        Process {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            log,
        }
    }

    /// SIGKILL: no stop at all.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (bounded by `within`) for the exit; its code, and how
    /// long the stop took.
    pub fn terminate(&mut self, within: Duration) -> (i32, Duration) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let started = Instant::now();
        while started.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status.code().unwrap_or(-1), started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no exit within {within:?}; log:\n{}", self.log());
    }

    /// Its resident memory now (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the gateway's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in {status}"))
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
