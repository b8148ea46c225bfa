//! `lcnet serve` under test: started on an ephemeral loopback port, spoken
//! to over plain HTTP/1.1 (one connection per request, no client library),
//! killed when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::ROOT;

/// A running server.
pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// Everything it wrote to stderr after the listening line.
    pub log: Arc<Mutex<String>>,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Header lines, lower-cased names.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("status {}: body is not JSON ({e}): {}", self.status, self.text()))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

impl Server {
    /// Starts `lcnet serve --port 0 args...` and waits for its address.
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lcnet"))
            .args(["serve", "--port", "0"])
            .args(args)
            .current_dir(ROOT)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lcnet serve");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        let Some(address) = line.split("http://").nth(1).and_then(|rest| rest.split_whitespace().next()) else {
            let _ = child.kill();
            panic!("lcnet serve did not say where it listens: {line}");
        };
        let address = address.to_string();
        // Keep reading stderr, so that the server never blocks on a full pipe.
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            while stderr.read_line(&mut text).unwrap_or(0) > 0 {
                sink.lock().unwrap().push_str(&text);
                text.clear();
            }
        });
        Server { child, address, log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Answer {
        self.request("GET", path, b"")
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &serde_json::Value) -> Answer {
        self.request("POST", path, body.to_string().as_bytes())
    }

    /// One request on a new connection; the body is written from another
    /// thread, so that a server answering before reading it all (413) is
    /// still heard.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> Answer {
        let mut stream = TcpStream::connect(&self.address).expect("connect to lcnet serve");
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.address,
            body.len()
        );
        let mut writer = stream.try_clone().unwrap();
        let payload = [head.as_bytes(), body].concat();
        let sending = std::thread::spawn(move || {
            let _ = writer.write_all(&payload);
        });
        let mut raw = Vec::new();
        let read = stream.read_to_end(&mut raw);
        let _ = sending.join();
        if raw.is_empty() {
            panic!("{method} {path}: no answer ({read:?})");
        }
        parse(&raw)
    }

    /// The value of a metric line that starts with `name` (summed over its labels).
    pub fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics").text();
        text.lines()
            .filter(|line| line.starts_with(name) && line[name.len()..].starts_with([' ', '{']))
            .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        let rc = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(rc, 0);
    }

    /// Waits (at most 30 s) for the process to end; its exit code.
    pub fn wait(&mut self) -> Option<i32> {
        for _ in 0..3000 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("lcnet serve still running 30 s after SIGTERM");
    }

    /// Resident memory in kB, from /proc.
    pub fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse(raw: &[u8]) -> Answer {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    Answer { status, headers, body: raw[split + 4..].to_vec() }
}
