// SPDX-License-Identifier: GPL-2.0

//! Reading what `/init` printed on its serial port: the markers of
//! `qemu-images/init` split it into each step's output, exit status and
//! kernel log.

use std::collections::BTreeMap;

/// Every marker line starts with this, then the run's token.
pub(crate) const MARKER_PREFIX: &str = "@@WB ";

/// A fresh token for one boot: 16 random hex digits that `/init` puts
/// in every marker (`@@WB 3f9c... begin 4`) and that nothing in the guest
/// can see (it is not in any step's environment, and `/init` removes the
/// file it came in). A module or a step that prints `@@WB begin 4` cannot
/// forge a marker: without the token, the line is just output.
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 8];
    if let Ok(mut random) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = random.read_exact(&mut bytes);
    }
    let fallback = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mixed = u64::from_le_bytes(bytes) ^ (fallback as u64).rotate_left(17) ^ u64::from(std::process::id());
    format!("{mixed:016x}")
}

/// One marker line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    /// The guest booted and waits for its late files.
    Want,
    /// The late files arrived damaged.
    Lost,
    /// The guest booted (and has its late files).
    Ready,
    /// Step N started.
    Begin(usize),
    /// Step N hit its time limit; its tasks' kernel stacks follow.
    Stuck(usize),
    /// Step N's tasks could not be killed.
    Hung(usize),
    /// Step N was not run: an earlier step of its chapter oopsed.
    Skipped(usize),
    /// Step N exited with a status.
    Exit(usize, i32),
    /// Step N's kernel log follows.
    Dmesg(usize),
    /// Step N is over.
    End(usize),
    /// Every step ran.
    Done,
}

impl Marker {
    /// Parses a line, or `None` when it is not a marker of the run whose
    /// token is `token`.
    pub(crate) fn parse(line: &str, token: &str) -> Option<Marker> {
        let mut words = line.strip_prefix(MARKER_PREFIX)?.split_whitespace();
        if words.next()? != token {
            return None;
        }
        let kind = words.next()?;
        let mut number = || words.next().and_then(|w| w.parse::<i64>().ok());
        Some(match kind {
            "want" => Marker::Want,
            "lost" => Marker::Lost,
            "ready" => Marker::Ready,
            "done" => Marker::Done,
            "begin" => Marker::Begin(number()? as usize),
            "stuck" => Marker::Stuck(number()? as usize),
            "hung" => Marker::Hung(number()? as usize),
            "skipped" => Marker::Skipped(number()? as usize),
            "exit" => {
                let n = number()? as usize;
                Marker::Exit(n, number()? as i32)
            }
            "dmesg" => Marker::Dmesg(number()? as usize),
            "end" => Marker::End(number()? as usize),
            _ => return None,
        })
    }
}

/// What one step produced in the guest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StepRecord {
    /// The command's output (stdout and stderr).
    pub(crate) output: Vec<String>,
    /// Its exit status, when it exited.
    pub(crate) exit: Option<i32>,
    /// The kernel log lines printed during the step, timestamps removed.
    pub(crate) dmesg: Vec<String>,
    /// Whether the step's end marker arrived.
    pub(crate) ended: bool,
    /// Whether the guest skipped it after an earlier step oopsed.
    pub(crate) skipped: bool,
    /// The step runner's report when the step hit its time limit: each task
    /// and its kernel stack.
    pub(crate) stuck: Option<Vec<String>>,
}

/// The whole transcript, by step.
#[derive(Debug, Clone, Default)]
pub(crate) struct Transcript {
    /// Whether the guest reached `/init`.
    pub(crate) booted: bool,
    /// Whether it asked for late files (it had reached `/init` then).
    pub(crate) wanted: bool,
    /// Whether every step ran.
    pub(crate) done: bool,
    /// Each step that started.
    pub(crate) steps: BTreeMap<usize, StepRecord>,
}

impl Transcript {
    /// Splits the text from ttyS1 into steps.
    pub(crate) fn parse(text: &str, token: &str) -> Transcript {
        #[derive(PartialEq)]
        enum Section {
            None,
            Output(usize),
            Stuck(usize),
            Dmesg(usize),
        }
        let mut transcript = Transcript::default();
        let mut section = Section::None;
        for line in text.lines() {
            match Marker::parse(line, token) {
                Some(Marker::Ready) => transcript.booted = true,
                Some(Marker::Want) => transcript.wanted = true,
                // Before the first step: the supervisor acts on it.
                Some(Marker::Lost) => {}
                Some(Marker::Done) => transcript.done = true,
                Some(Marker::Begin(n)) => {
                    transcript.steps.insert(n, StepRecord::default());
                    section = Section::Output(n);
                }
                Some(Marker::Stuck(n)) => {
                    transcript.steps.entry(n).or_default().stuck = Some(Vec::new());
                    section = Section::Stuck(n);
                }
                Some(Marker::Hung(_)) => section = Section::None,
                Some(Marker::Skipped(n)) => transcript.steps.entry(n).or_default().skipped = true,
                Some(Marker::Exit(n, status)) => {
                    transcript.steps.entry(n).or_default().exit = Some(status);
                    section = Section::None;
                }
                Some(Marker::Dmesg(n)) => section = Section::Dmesg(n),
                Some(Marker::End(n)) => {
                    transcript.steps.entry(n).or_default().ended = true;
                    section = Section::None;
                }
                None => match section {
                    Section::Output(n) => transcript.steps.entry(n).or_default().output.push(line.to_string()),
                    Section::Stuck(n) => {
                        // The step's own output may still interleave; stack lines are recognisable.
                        let record = transcript.steps.entry(n).or_default();
                        if line.starts_with("task ") || line.starts_with("[<") {
                            record.stuck.get_or_insert_with(Vec::new).push(line.to_string());
                        } else {
                            record.output.push(line.to_string());
                        }
                    }
                    Section::Dmesg(n) => transcript.steps.entry(n).or_default().dmesg.push(strip_timestamp(line).to_string()),
                    Section::None => {}
                },
            }
        }
        transcript
    }
}

/// `[   12.345678] hello: hi` gives `hello: hi`.
pub(crate) fn strip_timestamp(line: &str) -> &str {
    let trimmed = line.trim_start();
    if let Some(rest) = trimmed.strip_prefix('[') {
        if let Some((stamp, message)) = rest.split_once(']') {
            if stamp.trim().chars().all(|c| c.is_ascii_digit() || c == '.') {
                return message.strip_prefix(' ').unwrap_or(message);
            }
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers() {
        assert_eq!(Marker::parse("@@WB T begin 3", "T"), Some(Marker::Begin(3)));
        assert_eq!(Marker::parse("@@WB T exit 3 137", "T"), Some(Marker::Exit(3, 137)));
        assert_eq!(Marker::parse("@@WB T ready", "T"), Some(Marker::Ready));
        assert_eq!(Marker::parse("@@WB T exit 3", "T"), None);
        assert_eq!(Marker::parse("hello @@WB T begin 1", "T"), None);
    }

    #[test]
    fn splits_steps() {
        let text = "noise\n@@WB T ready\n@@WB T begin 0\ninsmod: ok\n@@WB T exit 0 0\n@@WB T dmesg 0\n\
                    [    1.000000] hello: Hello\n@@WB T end 0\n@@WB T begin 1\npartial\n";
        let t = Transcript::parse(text, "T");
        assert!(t.booted && !t.done);
        assert_eq!(t.steps[&0].output, vec!["insmod: ok"]);
        assert_eq!(t.steps[&0].exit, Some(0));
        assert_eq!(t.steps[&0].dmesg, vec!["hello: Hello"]);
        assert!(t.steps[&0].ended);
        assert_eq!(t.steps[&1].output, vec!["partial"]);
        assert!(!t.steps[&1].ended && t.steps[&1].exit.is_none());
    }

    #[test]
    fn stuck_steps_keep_their_stacks() {
        let text = "@@WB T begin 0\nworking\n@@WB T stuck 0\ntask 51 (insmod) State:\tR (running), kernel stack:\n\
                    [<0>] spin+0x4/0x10 [hello]\n@@WB T hung 0\n";
        let t = Transcript::parse(text, "T");
        let step = &t.steps[&0];
        assert_eq!(step.output, vec!["working"]);
        assert_eq!(step.stuck.as_ref().unwrap().len(), 2);
        assert!(!step.ended);
    }

    #[test]
    fn skipped_steps_are_marked() {
        let t = Transcript::parse("@@WB T begin 4\n@@WB T skipped 4\n@@WB T end 4\n", "T");
        assert!(t.steps[&4].skipped && t.steps[&4].ended && t.steps[&4].exit.is_none());
    }

    #[test]
    fn timestamps() {
        assert_eq!(strip_timestamp("[   12.345678] hello: hi"), "hello: hi");
        assert_eq!(strip_timestamp("[x] not a stamp"), "[x] not a stamp");
    }
}
