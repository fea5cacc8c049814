// SPDX-License-Identifier: GPL-2.0

//! A client of QEMU's machine protocol (QMP): one JSON object per line over
//! a Unix socket. The harness uses it to save a booted guest and to learn
//! when a guest resumed from one runs. Every read has a deadline, so a QEMU
//! that stops answering cannot hang the harness.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::Result;
use anyhow::{anyhow, Context};
use serde_json::Value;

/// How long one command may take to be answered.
const ANSWER_DEADLINE: Duration = Duration::from_secs(20);

/// A connection that has left capabilities negotiation (commands work).
pub(crate) struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to the socket QEMU listens on (`-qmp unix:PATH,server=on,
    /// wait=off`), retrying while QEMU is still starting; `alive` says
    /// whether QEMU still runs, and the wait ends at `deadline`.
    pub(crate) fn connect(path: &Path, alive: &mut dyn FnMut() -> bool, deadline: Instant) -> Result<Qmp> {
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(stream) => break stream,
                Err(_) if alive() && Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(anyhow!("cannot reach QEMU's QMP socket {}: {e}", path.display())),
            }
        };
        stream.set_read_timeout(Some(ANSWER_DEADLINE))?;
        let mut qmp = Qmp { reader: BufReader::new(stream.try_clone()?), writer: stream };
        let greeting = qmp.line()?;
        if greeting.get("QMP").is_none() {
            return Err(anyhow!("QEMU's QMP socket greeted with {greeting}, not a QMP greeting"));
        }
        qmp.execute("qmp_capabilities", Value::Null)?;
        Ok(qmp)
    }

    /// Runs `command` and returns what it returned; an error answer is an
    /// error naming the command.
    pub(crate) fn execute(&mut self, command: &str, arguments: Value) -> Result<Value> {
        let mut request = serde_json::json!({ "execute": command });
        if !arguments.is_null() {
            request["arguments"] = arguments;
        }
        writeln!(self.writer, "{request}").with_context(|| format!("QMP `{command}`: QEMU is gone"))?;
        loop {
            let mut answer = self.line().with_context(|| format!("QMP `{command}`"))?;
            if let Some(error) = answer.get("error") {
                return Err(anyhow!("QMP `{command}` failed: {}", error.get("desc").and_then(Value::as_str).unwrap_or("no reason given")));
            }
            if let Some(value) = answer.get_mut("return") {
                return Ok(value.take());
            }
            // An event (it has "event"): not the answer.
        }
    }

    /// The next JSON line.
    fn line(&mut self) -> Result<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(anyhow!("QEMU closed its QMP socket"));
        }
        serde_json::from_str(&line).with_context(|| format!("QEMU's QMP socket sent `{}`, not JSON", line.trim()))
    }

    /// Waits until the guest runs (a guest resumed from a saved state starts
    /// once the state is loaded), at most until `deadline`.
    pub(crate) fn wait_running(&mut self, deadline: Instant) -> Result<()> {
        loop {
            let status = self.execute("query-status", Value::Null)?;
            if status.get("running").and_then(Value::as_bool) == Some(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(anyhow!("the guest is still `{}`, not running", status.get("status").and_then(Value::as_str).unwrap_or("?")));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Saves the running guest's whole state (memory and devices) into
    /// `path`, the guest running on; returns once the state is complete.
    pub(crate) fn save(&mut self, path: &Path, deadline: Instant) -> Result<()> {
        let path = path.to_str().filter(|p| !p.contains('\'')).ok_or_else(|| anyhow!("cannot save a guest into {}", path.display()))?;
        // QEMU's default migration bandwidth is 32 MiB/s: a file is not a network.
        self.execute("migrate-set-parameters", serde_json::json!({ "max-bandwidth": 1u64 << 40 }))?;
        self.execute("migrate", serde_json::json!({ "uri": format!("exec:cat > '{path}'") }))?;
        loop {
            let info = self.execute("query-migrate", Value::Null)?;
            match info.get("status").and_then(Value::as_str) {
                Some("completed") => return Ok(()),
                Some(status @ ("failed" | "cancelled")) => {
                    let why = info.get("error-desc").and_then(Value::as_str).unwrap_or("no reason given");
                    return Err(anyhow!("saving the guest {status}: {why}"));
                }
                _ if Instant::now() > deadline => return Err(anyhow!("saving the guest did not finish in time")),
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}
