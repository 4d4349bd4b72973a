//! A Kafka-API broker of a test's own (nisshi, the binary the harness built): for
//! cases that stop, freeze or start the broker, which the shared one must never be.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The broker process; killed (and its directory removed) when dropped.
pub struct OwnBroker {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

/// A port free now, for a broker started later.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl OwnBroker {
    /// A broker on a free port, with the two event topics (3 partitions each).
    pub fn start() -> Self {
        Self::start_on(free_port(), true)
    }

    /// A broker on `port`, with the two event topics when `topics`; returns once
    /// it answers (bounded).
    pub fn start_on(port: u16, topics: bool) -> Self {
        let bin = crate::services().var("NISSHI_BIN").to_string();
        let dir = std::env::temp_dir().join(crate::unique_name("nisshi"));
        std::fs::create_dir_all(&dir).expect("broker directory");
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&bin)
            .current_dir(&dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://nisshi/"])
            .args(["--group-initial-rebalance-delay", "0s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nisshi");
        let broker = OwnBroker { child, port, dir };
        // Poll the broker's readiness over its protocol (bounded).
        let up = (0..300).any(|_| {
            let ok = broker.admin(&["topic", "list"]);
            if !ok {
                std::thread::sleep(Duration::from_millis(100));
            }
            ok
        });
        assert!(up, "own broker did not start");
        if topics {
            broker.create_topics();
        }
        broker
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `checkout` and `checkin`, 3 partitions each (unless a client's metadata
    /// request had the broker create one first, with its default partitions).
    pub fn create_topics(&self) {
        for topic in ["checkout", "checkin"] {
            let created = self.admin(&["topic", "create", "--partitions", "3", "--silent", topic]);
            assert!(
                created || self.topics().contains(topic),
                "topic {topic} created"
            );
        }
    }

    /// What `topic list` prints.
    fn topics(&self) -> String {
        let bin = crate::services().var("NISSHI_BIN").to_string();
        let url = format!("tcp://127.0.0.1:{}", self.port);
        Command::new(&bin)
            .args(["topic", "list", "--broker", &url])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Stops the process (SIGSTOP): connections stay open, nothing answers.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes it (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let sent = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "kill {sig}");
    }

    /// Runs a nisshi admin command against this broker.
    fn admin(&self, args: &[&str]) -> bool {
        let bin = crate::services().var("NISSHI_BIN").to_string();
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let (verb, rest) = args.split_at(2.min(args.len()));
        Command::new(&bin)
            .args(verb)
            .args(["--broker", &url])
            .args(rest)
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
