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
    /// `path`, leaving it paused; returns once `path` holds all of it.
    pub(crate) fn save(&mut self, path: &Path, deadline: Instant) -> Result<()> {
        // QEMU says `completed` before its writer has written the last of
        // it: the writer moves the file into place when it has.
        let partial = path.with_extension("partial");
        let _ = std::fs::remove_file(path);
        let command = format!("cat > {0} && mv {0} {1}", shell_word(&partial)?, shell_word(path)?);
        // QEMU's default migration bandwidth is 32 MiB/s: a file is not a network.
        self.execute("migrate-set-parameters", serde_json::json!({ "max-bandwidth": 1u64 << 40 }))?;
        self.execute("migrate", serde_json::json!({ "uri": format!("exec:{command}") }))?;
        loop {
            let info = self.execute("query-migrate", Value::Null)?;
            match info.get("status").and_then(Value::as_str) {
                Some("completed") if path.exists() => return Ok(()),
                Some(status @ ("failed" | "cancelled")) => {
                    let why = info.get("error-desc").and_then(Value::as_str).unwrap_or("no reason given");
                    return Err(anyhow!("saving the guest {status}: {why}"));
                }
                _ if Instant::now() > deadline => return Err(anyhow!("saving the guest into {} did not finish in time", path.display())),
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

/// `path` as one word of a shell command (QEMU runs `exec:` migrations
/// with `sh -c`).
pub(crate) fn shell_word(path: &Path) -> Result<String> {
    match path.to_str() {
        Some(text) if !text.contains('\'') => Ok(format!("'{text}'")),
        _ => Err(anyhow!(
            "QEMU cannot be given {} in a shell command: move the cache (WORKBOOK_CACHE) to a path without quotes",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_for_the_shell_and_quotes_refused() {
        assert_eq!(shell_word(Path::new("/cache/snap shots/state")).unwrap(), "'/cache/snap shots/state'");
        let error = shell_word(Path::new("/it's/state")).unwrap_err().to_string();
        assert!(error.contains("WORKBOOK_CACHE"), "{error}");
    }
}
