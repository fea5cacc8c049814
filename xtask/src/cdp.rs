// SPDX-License-Identifier: GPL-2.0

//! One headless Chromium driven over its DevTools protocol on a pipe
//! (`--remote-debugging-pipe`), so that many pages share one browser
//! instead of a launch each. Chromium reads commands on its fd 3 and writes
//! answers and events on its fd 4, each a JSON message ended by a NUL byte.
//! Every wait has a deadline, and the browser is killed with the harness.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use serde_json::{json, Value};

use crate::Result;

/// A running Chromium and its end of the protocol's pipes.
pub(crate) struct Chromium {
    child: Child,
    commands: ChildStdin,
    messages: Receiver<Value>,
    /// Events read while waiting for an answer, kept for [`Chromium::event`].
    events: Vec<Value>,
    next_id: u64,
}

impl Chromium {
    /// Starts `program` with `flags` and the protocol on a pipe.
    pub(crate) fn launch(program: &Path, flags: &[String]) -> Result<Chromium> {
        let mut command = Command::new(program);
        command.args(flags).arg("--remote-debugging-pipe").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
        // SAFETY: the closure runs in the child between fork and exec and
        // calls only open, dup2, close and prctl, which are
        // async-signal-safe; it allocates nothing (the path is a static C
        // string). dup2 makes our pipes Chromium's fds 3 and 4, which
        // `--remote-debugging-pipe` reads and writes, then points fds 0 and
        // 1 at /dev/null so nothing else Chromium prints mixes with the
        // protocol. PR_SET_PDEATHSIG kills it if the harness dies first.
        unsafe {
            command.pre_exec(|| {
                if libc::dup2(0, 3) < 0 || libc::dup2(1, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Opened after the dup2s, so that it cannot be fd 3 or 4.
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if null < 0
                    || libc::dup2(null, 0) < 0
                    || libc::dup2(null, 1) < 0
                    || libc::close(null) != 0
                    || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().with_context(|| format!("cannot start {}", program.display()))?;
        let (Some(commands), Some(answers)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(anyhow!("Chromium started without its protocol pipes"));
        };
        let (sender, messages) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(answers);
            let mut message = Vec::new();
            while reader.read_until(0, &mut message).is_ok_and(|n| n > 0) {
                if message.last() == Some(&0) {
                    message.pop();
                }
                if let Ok(value) = serde_json::from_slice(&message) {
                    if sender.send(value).is_err() {
                        return;
                    }
                }
                message.clear();
            }
        });
        Ok(Chromium { child, commands, messages, events: Vec::new(), next_id: 1 })
    }

    /// Sends `method` with `params` to the page attached as `session`, or
    /// to the browser, and returns its result; an error names what
    /// Chromium refused, or that it did not answer by `deadline`.
    pub(crate) fn call(&mut self, session: Option<&str>, method: &str, params: Value, deadline: Instant) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message)?;
        bytes.push(0);
        self.commands.write_all(&bytes).with_context(|| format!("Chromium closed its protocol pipe before {method}"))?;
        let mut answer = self.next_matching(deadline, method, |message| message["id"].as_u64() == Some(id))?;
        if let Some(error) = answer.get("error") {
            return Err(anyhow!("Chromium refused {method}: {}", error["message"].as_str().unwrap_or("no reason given")));
        }
        Ok(answer["result"].take())
    }

    /// Waits until `deadline` for the event `method` of `session`; returns
    /// its parameters.
    pub(crate) fn event(&mut self, session: &str, method: &str, deadline: Instant) -> Result<Value> {
        let matches = |message: &Value| message["method"] == method && message["sessionId"] == session;
        if let Some(at) = self.events.iter().position(matches) {
            return Ok(self.events.remove(at)["params"].take());
        }
        Ok(self.next_matching(deadline, method, matches)?["params"].take())
    }

    /// Forgets the events seen so far, before a new navigation.
    pub(crate) fn forget_events(&mut self) {
        self.events.clear();
    }

    /// The next message that `matches`, read by `deadline`; the events
    /// read before it are kept for [`Chromium::event`].
    fn next_matching(&mut self, deadline: Instant, waiting_for: &str, matches: impl Fn(&Value) -> bool) -> Result<Value> {
        loop {
            let message = match self.messages.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(message) => message,
                Err(RecvTimeoutError::Timeout) => return Err(anyhow!("Chromium did not answer {waiting_for} in time")),
                Err(RecvTimeoutError::Disconnected) => return Err(anyhow!("Chromium exited while the harness waited for {waiting_for}")),
            };
            if matches(&message) {
                return Ok(message);
            }
            if message.get("method").is_some() {
                self.events.push(message);
            }
        }
    }
}

impl Drop for Chromium {
    /// Asks the browser to close (its helper processes go with it), and
    /// kills it if it has not within 5 s.
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let _ = self.call(None, "Browser.close", json!({}), deadline);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
