//! A proxy's own time before a stream's first byte: the time its threads spend on a core
//! running its own code, read from the kernel's record of its system calls and of the
//! scheduler's switches (`perf record` on tracepoints), so that nothing in the proxies is
//! instrumented and the floor and the sidecar are read the same way.
//!
//! Per stream (each on a new connection), the proxy's time on a core outside system calls
//! - **request**: from accepting the connection to its last call that sends the request upstream;
//! - **sent**: from there to the return of its first read of the answer (what the proxy does
//!   while the upstream works);
//! - **answer**: from there to its last call that writes the first bytes to the client before
//!   it next sleeps;
//!
//! and, apart, its time on a core inside system calls from the accept to the return of that last
//! write (the socket calls, each of which may wake a peer on another core, and the runtime's
//! own: `epoll`, `futex`). Time off the core is in neither: waiting for the client or the
//! upstream, and being woken (on a virtual machine, an idle vCPU woken through the hypervisor);
//! time the hypervisor takes from a running vCPU is not seen and counts as on the core. perf's
//! own cost of recording each event lands on both sides (at a call's exit, after its timestamp:
//! in the code that follows), more for the proxy that makes more calls; the harness reports how
//! much the recording slowed each proxy's first byte.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::measure::Pair;

/// What is recorded: connections accepted (client sockets) and opened (upstream sockets), reads,
/// the two ways hyper writes, every system call's entry and exit, and every switch of a thread
/// on or off a core.
const EVENTS: &[&str] = &[
    "syscalls:sys_exit_accept4",
    "syscalls:sys_enter_connect",
    "syscalls:sys_enter_recvfrom",
    "syscalls:sys_exit_recvfrom",
    "syscalls:sys_enter_writev",
    "syscalls:sys_enter_sendto",
    "raw_syscalls:sys_enter",
    "raw_syscalls:sys_exit",
    "sched:sched_switch",
];

/// One stream's time on a core, ns: see the module's documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stream {
    /// Its own code, accepted to sent upstream.
    pub request: u64,
    /// Its own code, sent to the answer's first read.
    pub sent: u64,
    /// Its own code, the answer's first read to the first bytes written to the client.
    pub answer: u64,
    /// Inside system calls, accepted to the return of the last write of the first bytes.
    pub calls: u64,
}

impl Stream {
    /// Its own code, accepted to the first bytes written.
    pub fn own(&self) -> u64 {
        self.request + self.sent + self.answer
    }
}

/// The medians of a proxy's streams, µs (each its own median: the parts need not add up to the
/// whole's).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Medians {
    pub request: f64,
    pub sent: f64,
    pub answer: f64,
    /// Its own code before the first byte.
    pub own: f64,
    /// Inside system calls before the first byte.
    pub calls: f64,
}

/// Both proxies' streams as recorded, and each one's median first byte during the recording, µs
/// (set against the pass before it, what recording cost).
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    pub spans: Pair<Spans>,
    pub first_byte: Pair<u64>,
}

/// One proxy's streams, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Spans {
    pub streams: Vec<Stream>,
}

impl Spans {
    /// The median of each part and of the total, µs; `None` with no stream.
    pub fn medians_us(&self) -> Option<Medians> {
        if self.streams.is_empty() {
            return None;
        }
        let median = |f: fn(&Stream) -> u64| {
            crate::measure::median(self.streams.iter().map(|s| f(s) as f64).collect()) / 1000.0
        };
        Some(Medians {
            request: median(|s| s.request),
            sent: median(|s| s.sent),
            answer: median(|s| s.answer),
            own: median(Stream::own),
            calls: median(|s| s.calls),
        })
    }
}

/// A `perf record` of the machine's socket calls and switches, running.
pub struct Recording {
    child: Child,
    data: PathBuf,
    pids: Vec<u32>,
}

impl Recording {
    /// Starts recording into `dir`, for `pids`. Fails with the reason when `perf` cannot: not
    /// installed, or not allowed to read the tracepoints. perf runs where the harness runs (it
    /// inherits the harness's CPUs), not on the proxies' core.
    pub async fn start(pids: &[u32], dir: &Path) -> Result<Recording, String> {
        let data = dir.join("oncore.perf.data");
        let mut cmd = Command::new("perf");
        cmd.args(["record", "-q", "-o"]).arg(&data);
        for e in EVENTS {
            cmd.args(["-e", e]);
        }
        // Every CPU, not `-p`: events that follow a process's threads are switched at each
        // context switch, which slows the very wake-ups the proxies pay; the listing is read for
        // these processes alone.
        let mut child = cmd
            .arg("-a")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("perf could not be started ({e}): install linux-perf"))?;
        // perf attaches to every CPU before it records; a run that has ended by now failed.
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Ok(Some(status)) = child.try_wait() {
            let mut why = String::new();
            if let Some(mut err) = child.stderr.take() {
                use std::io::Read as _;
                let _ = err.read_to_string(&mut why);
            }
            return Err(format!(
                "perf record ended at once ({status}): {}",
                reason(&why)
            ));
        }
        Ok(Recording {
            child,
            data,
            pids: pids.to_vec(),
        })
    }

    /// Stops recording and reads the streams of each process recorded.
    pub fn finish(mut self) -> Result<HashMap<u32, Spans>, String> {
        // SIGINT, so that perf writes out what it holds; killed outright if that fails.
        let pid = self.child.id().to_string();
        let interrupted = Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .is_ok_and(|s| s.success());
        if !interrupted {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let out = Command::new("perf")
            .args(["script", "--ns", "-F", "pid,tid,time,event,trace", "-i"])
            .arg(&self.data)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("perf script could not be run: {e}"))?;
        let said = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!(
                "perf script failed ({}): {}",
                out.status,
                reason(&said)
            ));
        }
        // A lost switch or call would count a sleep as work: no figures rather than wrong ones.
        if let Some(lost) = said.lines().find(|l| l.contains("lost")) {
            return Err(format!(
                "perf lost events while recording ({})",
                lost.trim()
            ));
        }
        let mut all = spans(&String::from_utf8_lossy(&out.stdout));
        all.retain(|pid, _| self.pids.contains(pid));
        Ok(all)
    }
}

impl Drop for Recording {
    /// A recording left running (the harness failed or returned early) is stopped, and its data
    /// removed.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.data);
    }
}

/// What perf said, in a line: its first lines that say something (perf starts many of its
/// messages with a bare `Error:`).
fn reason(stderr: &str) -> String {
    let said: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "Error:")
        .take(2)
        .collect();
    if said.is_empty() {
        "no message".to_owned()
    } else {
        said.join(" ")
    }
}

/// A process's time on a core so far, ns: outside and inside system calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Clock {
    own: u64,
    calls: u64,
}

/// Where a proxy is in the stream it is serving; each figure is the process's time on a core
/// (see [`Cores::of`]) at that point.
#[derive(Clone, Copy, Debug)]
enum Stage {
    /// Between streams.
    Idle,
    /// Accepted, at `start`.
    Request { start: Clock },
    /// Sent upstream, last at `sent`.
    Sent { start: Clock, sent: Clock },
    /// The answer's first read returned at `answer`.
    Answer {
        start: Clock,
        sent: Clock,
        answer: Clock,
    },
    /// Writing to the client on thread `writer`, last at `last` (its call `open` until it
    /// returns), until that thread sleeps.
    Writing {
        start: Clock,
        sent: Clock,
        answer: Clock,
        writer: u32,
        last: Clock,
        open: bool,
    },
}

impl Stage {
    /// The stream, once something was written to the client.
    fn stream(self) -> Option<Stream> {
        match self {
            Stage::Writing {
                start,
                sent,
                answer,
                last,
                ..
            } => Some(Stream {
                request: sent.own.saturating_sub(start.own),
                sent: answer.own.saturating_sub(sent.own),
                answer: last.own.saturating_sub(answer.own),
                calls: last.calls.saturating_sub(start.calls),
            }),
            Stage::Idle | Stage::Request { .. } | Stage::Sent { .. } | Stage::Answer { .. } => None,
        }
    }
}

/// Each process's time on a core so far, from the switches and the system calls.
#[derive(Default)]
struct Cores {
    /// Time of the threads no longer on a core, per process.
    done: HashMap<u32, Clock>,
    /// The threads on a core, since when (or since their last call began or ended).
    running: HashMap<u32, u64>,
    /// The threads inside a system call.
    in_call: std::collections::HashSet<u32>,
    /// Each thread's process, as the listing shows it.
    process: HashMap<u32, u32>,
}

impl Cores {
    /// Adds thread `tid`'s time on its core since its mark to its process, and marks `ns`.
    fn settle(&mut self, pid: u32, tid: u32, ns: u64) {
        if let Some(since) = self.running.get_mut(&tid) {
            let spent = ns.saturating_sub(*since);
            *since = ns;
            let clock = self.done.entry(pid).or_default();
            if self.in_call.contains(&tid) {
                clock.calls += spent;
            } else {
                clock.own += spent;
            }
        }
    }

    /// A thread seen in a call is on a core (it may have been since before the recording).
    fn seen(&mut self, pid: u32, tid: u32, ns: u64) {
        self.process.insert(tid, pid);
        self.running.entry(tid).or_insert(ns);
    }

    /// Thread `tid` enters (`true`) or leaves a system call at `ns`.
    fn call(&mut self, pid: u32, tid: u32, ns: u64, enters: bool) {
        self.seen(pid, tid, ns);
        self.settle(pid, tid, ns);
        if enters {
            self.in_call.insert(tid);
        } else {
            self.in_call.remove(&tid);
        }
    }

    /// `prev` (of process `pid`) leaves its core at `ns`, and `next` takes it.
    fn switch(&mut self, pid: u32, prev: u32, next: u32, ns: u64) {
        // The idle task is 0 on every core.
        if prev != 0 {
            self.process.insert(prev, pid);
            self.settle(pid, prev, ns);
            self.running.remove(&prev);
        }
        if next != 0 {
            // A thread not seen before is woken inside the call it slept in (`epoll_wait`,
            // `futex`), as sleeping threads are.
            if !self.process.contains_key(&next) {
                self.in_call.insert(next);
            }
            self.running.insert(next, ns);
        }
    }

    /// Process `pid`'s time on a core up to `ns`.
    fn of(&self, pid: u32, ns: u64) -> Clock {
        let mut clock = self.done.get(&pid).copied().unwrap_or_default();
        for (tid, since) in &self.running {
            if self.process.get(tid) == Some(&pid) {
                let spent = ns.saturating_sub(*since);
                if self.in_call.contains(tid) {
                    clock.calls += spent;
                } else {
                    clock.own += spent;
                }
            }
        }
        clock
    }
}

/// One line of `perf script -F pid,tid,time,event,trace`.
struct Call<'a> {
    pid: u32,
    tid: u32,
    ns: u64,
    event: &'a str,
    trace: &'a str,
}

fn parse_line(line: &str) -> Option<Call<'_>> {
    let mut words = line.split_whitespace();
    let (pid, tid) = words.next()?.split_once('/')?;
    let time = words.next()?.trim_end_matches(':');
    let event = words.next()?.trim_end_matches(':');
    let trace = line.split_once(event)?.1.trim_start_matches(':').trim();
    let (secs, frac) = time.split_once('.')?;
    let frac = format!("{frac:0<9}");
    Some(Call {
        pid: pid.parse().ok()?,
        tid: tid.parse().ok()?,
        ns: secs.parse::<u64>().ok()? * 1_000_000_000 + frac.get(..9)?.parse::<u64>().ok()?,
        event: event.split_once(':')?.1,
        trace,
    })
}

/// A call's first argument (`fd: 0x…`), or an exit's return value, as a number; errors
/// (negative values) are `None`.
fn number(trace: &str) -> Option<i64> {
    let hex = trace
        .strip_prefix("fd: ")
        .unwrap_or(trace)
        .split(',')
        .next()?
        .trim()
        .strip_prefix("0x")?;
    let v = u64::from_str_radix(hex, 16).ok()? as i64;
    (v >= 0).then_some(v)
}

/// A field of a switch (`prev_pid=12`), as text.
fn field<'a>(trace: &'a str, name: &str) -> Option<&'a str> {
    trace
        .split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}

/// The streams of every process in a `perf script` listing of [`EVENTS`], each served on a
/// new connection, one at a time per process. Client sockets are those accepted in the listing;
/// every other socket is upstream (pooled connections may predate the recording).
pub fn spans(script: &str) -> HashMap<u32, Spans> {
    let mut cores = Cores::default();
    let mut clients: HashMap<u32, std::collections::HashSet<i64>> = HashMap::new();
    let mut stage: HashMap<u32, Stage> = HashMap::new();
    // The fd of each thread's read in progress, for its exit.
    let mut reading: HashMap<u32, i64> = HashMap::new();
    let mut out: HashMap<u32, Spans> = HashMap::new();
    let mut finish = |pid: u32, s: Stage| {
        if let Some(stream) = s.stream() {
            out.entry(pid).or_default().streams.push(stream);
        }
    };
    for c in script.lines().filter_map(parse_line) {
        if c.event == "sched_switch" {
            let (Some(prev), Some(next)) = (
                field(c.trace, "prev_pid").and_then(|v| v.parse().ok()),
                field(c.trace, "next_pid").and_then(|v| v.parse().ok()),
            ) else {
                continue;
            };
            cores.switch(c.pid, prev, next, c.ns);
            // The thread that wrote to the client sleeps: the first bytes are out.
            let sleeps = field(c.trace, "prev_state").is_some_and(|s| !s.starts_with('R'));
            if let Some(&s @ Stage::Writing { writer, .. }) = stage.get(&c.pid)
                && writer == prev
                && sleeps
            {
                finish(c.pid, s);
                stage.insert(c.pid, Stage::Idle);
            }
            continue;
        }
        match c.event {
            "sys_enter" => {
                cores.call(c.pid, c.tid, c.ns, true);
                continue;
            }
            "sys_exit" => {
                cores.call(c.pid, c.tid, c.ns, false);
                // The return of the last write to the client: the stream's calls count to here.
                if let Some(Stage::Writing {
                    writer, last, open, ..
                }) = stage.get_mut(&c.pid)
                    && *writer == c.tid
                    && *open
                {
                    *last = cores.of(c.pid, c.ns);
                    *open = false;
                }
                continue;
            }
            _ => cores.seen(c.pid, c.tid, c.ns),
        }
        let at = cores.of(c.pid, c.ns);
        let client = |fd: i64| clients.get(&c.pid).is_some_and(|s| s.contains(&fd));
        let now = *stage.get(&c.pid).unwrap_or(&Stage::Idle);
        let next = match c.event {
            "sys_exit_accept4" => {
                let Some(fd) = number(c.trace) else {
                    continue;
                };
                clients.entry(c.pid).or_default().insert(fd);
                // A new stream; one left unfinished (an event lost) is dropped, or kept if its
                // first bytes were written.
                finish(c.pid, now);
                Stage::Request { start: at }
            }
            "sys_enter_connect" => {
                if let Some(fd) = number(c.trace) {
                    clients.entry(c.pid).or_default().remove(&fd);
                }
                continue;
            }
            "sys_enter_recvfrom" => {
                if let Some(fd) = number(c.trace) {
                    reading.insert(c.tid, fd);
                }
                continue;
            }
            "sys_exit_recvfrom" => {
                let Some(fd) = reading.remove(&c.tid) else {
                    continue;
                };
                // Nothing read (would block, or the end), or the client's request: no stage moves.
                if number(c.trace).is_none_or(|n| n == 0) || client(fd) {
                    continue;
                }
                match now {
                    Stage::Sent { start, sent } => Stage::Answer {
                        start,
                        sent,
                        answer: at,
                    },
                    // Later reads of the answer, or reads outside a stream.
                    Stage::Idle
                    | Stage::Request { .. }
                    | Stage::Answer { .. }
                    | Stage::Writing { .. } => now,
                }
            }
            "sys_enter_writev" | "sys_enter_sendto" => {
                let Some(fd) = number(c.trace) else {
                    continue;
                };
                match (client(fd), now) {
                    (false, Stage::Request { start } | Stage::Sent { start, .. }) => {
                        Stage::Sent { start, sent: at }
                    }
                    (
                        true,
                        Stage::Answer {
                            start,
                            sent,
                            answer,
                        }
                        | Stage::Writing {
                            start,
                            sent,
                            answer,
                            ..
                        },
                    ) => Stage::Writing {
                        start,
                        sent,
                        answer,
                        writer: c.tid,
                        last: at,
                        open: true,
                    },
                    // A write to the client before the answer, or upstream after it; or
                    // outside a stream.
                    (false, Stage::Idle | Stage::Answer { .. } | Stage::Writing { .. })
                    | (true, Stage::Idle | Stage::Request { .. } | Stage::Sent { .. }) => now,
                }
            }
            _ => continue,
        };
        stage.insert(c.pid, next);
    }
    for (pid, s) in stage {
        finish(pid, s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two streams through one proxy (pid 7: its main thread 7 and worker 8) as `perf script`
    /// lists them. The upstream connection (fd 0xd) is pooled, opened before the recording; each
    /// client connects anew. In the first, the worker (woken inside `epoll_wait`, NR 232)
    /// accepts, sends the request in two writes, sleeps in `epoll_wait` until the answer, and is
    /// preempted once inside a write to the client while the main thread sleeps elsewhere; an
    /// event of the stream follows 6 ms later. In the second, the main thread wakes from `futex`
    /// (NR 202), accepts (NR 288) and hands over to the worker, which holds the answer until a
    /// second read and is still writing when the listing ends; the worker's calls are not listed
    /// there, so all of its time counts as its own code.
    const LISTING: &str = "\
0/0 100.000000000: sched:sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=tokio-rt next_pid=8 next_prio=120
7/8 100.000002000: raw_syscalls:sys_exit: NR 232 = 1
7/8 100.000005000: syscalls:sys_exit_accept4: 0xc
7/8 100.000010000: syscalls:sys_enter_recvfrom: fd: 0x0000000c, ubuf: 0x1, size: 0x00000018
7/8 100.000011000: syscalls:sys_exit_recvfrom: 0x18
7/8 100.000020000: syscalls:sys_enter_recvfrom: fd: 0x0000000c, ubuf: 0x1, size: 0x00003fe8
7/8 100.000021000: syscalls:sys_exit_recvfrom: 0xbf
7/8 100.000081000: raw_syscalls:sys_enter: NR 20 (c, 1, 2, 0, 0, 0)
7/8 100.000081000: syscalls:sys_enter_writev: fd: 0x0000000d, vec: 0x1, vlen: 0x00000002
7/8 100.000083000: raw_syscalls:sys_exit: NR 20 = 0
7/8 100.000085000: raw_syscalls:sys_enter: NR 20 (c, 1, 2, 0, 0, 0)
7/8 100.000085000: syscalls:sys_enter_writev: fd: 0x0000000d, vec: 0x1, vlen: 0x00000001
7/8 100.000089000: raw_syscalls:sys_exit: NR 20 = 0
7/8 100.000090000: raw_syscalls:sys_enter: NR 45 (c, 1, 2, 0, 0, 0)
7/8 100.000090000: syscalls:sys_enter_recvfrom: fd: 0x0000000d, ubuf: 0x1, size: 0x00002000
7/8 100.000091000: raw_syscalls:sys_exit: NR 45 = 0
7/8 100.000091000: syscalls:sys_exit_recvfrom: 0xfffffffffffffff5
7/8 100.000093000: raw_syscalls:sys_enter: NR 232 (c, 1, 2, 0, 0, 0)
7/8 100.000095000: sched:sched_switch: prev_comm=tokio-rt prev_pid=8 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120
0/0 100.000295000: sched:sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=tokio-rt next_pid=8 next_prio=120
7/8 100.000297000: raw_syscalls:sys_exit: NR 232 = 0
7/8 100.000300000: raw_syscalls:sys_enter: NR 45 (c, 1, 2, 0, 0, 0)
7/8 100.000300000: syscalls:sys_enter_recvfrom: fd: 0x0000000d, ubuf: 0x1, size: 0x00002000
7/8 100.000302000: raw_syscalls:sys_exit: NR 45 = 0
7/8 100.000302000: syscalls:sys_exit_recvfrom: 0x2dc
7/8 100.000330000: raw_syscalls:sys_enter: NR 20 (c, 1, 2, 0, 0, 0)
7/8 100.000330000: syscalls:sys_enter_writev: fd: 0x0000000c, vec: 0x1, vlen: 0x00000004
7/8 100.000332000: sched:sched_switch: prev_comm=tokio-rt prev_pid=8 prev_prio=120 prev_state=R+ ==> next_comm=other next_pid=99 next_prio=120
7/7 100.000335000: sched:sched_switch: prev_comm=main prev_pid=7 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120
99/99 100.000337000: sched:sched_switch: prev_comm=other prev_pid=99 prev_prio=120 prev_state=S ==> next_comm=tokio-rt next_pid=8 next_prio=120
7/8 100.000338000: raw_syscalls:sys_exit: NR 20 = 0
7/8 100.000340000: raw_syscalls:sys_enter: NR 20 (c, 1, 2, 0, 0, 0)
7/8 100.000340000: syscalls:sys_enter_writev: fd: 0x0000000c, vec: 0x1, vlen: 0x00000003
7/8 100.000345000: raw_syscalls:sys_exit: NR 20 = 0
7/8 100.000348000: raw_syscalls:sys_enter: NR 232 (c, 1, 2, 0, 0, 0)
7/8 100.000350000: sched:sched_switch: prev_comm=tokio-rt prev_pid=8 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120
0/0 100.005995000: sched:sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=tokio-rt next_pid=8 next_prio=120
7/8 100.005997000: raw_syscalls:sys_exit: NR 232 = 0
7/8 100.006000000: syscalls:sys_enter_recvfrom: fd: 0x0000000d, ubuf: 0x1, size: 0x00002000
7/8 100.006001000: syscalls:sys_exit_recvfrom: 0xfd
7/8 100.006020000: syscalls:sys_enter_writev: fd: 0x0000000c, vec: 0x1, vlen: 0x00000003
7/8 100.006030000: sched:sched_switch: prev_comm=tokio-rt prev_pid=8 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120
0/0 100.100000000: sched:sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=main next_pid=7 next_prio=120
7/7 100.100001000: raw_syscalls:sys_exit: NR 202 = 0
7/7 100.100003000: raw_syscalls:sys_enter: NR 288 (3, 0, 0, 80800, 0, 0)
7/7 100.100005000: raw_syscalls:sys_exit: NR 288 = 14
7/7 100.100005000: syscalls:sys_exit_accept4: 0xe
7/7 100.100008000: raw_syscalls:sys_enter: NR 202 (1, 80, 0, 0, 0, 0)
7/7 100.100010000: sched:sched_switch: prev_comm=main prev_pid=7 prev_prio=120 prev_state=S ==> next_comm=tokio-rt next_pid=8 next_prio=120
7/8 100.100011000: syscalls:sys_enter_recvfrom: fd: 0x0000000e, ubuf: 0x1, size: 0x00003fe8
7/8 100.100012000: syscalls:sys_exit_recvfrom: 0xbf
7/8 100.100061000: syscalls:sys_enter_sendto: fd: 0x0000000d, buff: 0x1, len: 0xbf
7/8 100.100070000: sched:sched_switch: prev_comm=tokio-rt prev_pid=8 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120
0/0 100.100295000: sched:sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=tokio-rt next_pid=8 next_prio=120
7/8 100.100300000: syscalls:sys_enter_recvfrom: fd: 0x0000000d, ubuf: 0x1, size: 0x00002000
7/8 100.100302000: syscalls:sys_exit_recvfrom: 0x100
7/8 100.100310000: sched:sched_switch: prev_comm=tokio-rt prev_pid=8 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120
0/0 100.100395000: sched:sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=tokio-rt next_pid=8 next_prio=120
7/8 100.100400000: syscalls:sys_enter_recvfrom: fd: 0x0000000d, ubuf: 0x1, size: 0x00002000
7/8 100.100401000: syscalls:sys_exit_recvfrom: 0x80
7/8 100.100441000: syscalls:sys_enter_writev: fd: 0x0000000e, vec: 0x1, vlen: 0x00000007
";

    fn stream(request: u64, sent: u64, answer: u64, calls: u64) -> Stream {
        Stream {
            request: request * 1000,
            sent: sent * 1000,
            answer: answer * 1000,
            calls: calls * 1000,
        }
    }

    #[test]
    fn each_stream_counts_the_proxys_time_on_a_core_from_the_accept_to_the_first_bytes() {
        let spans = spans(LISTING);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[&7].streams, expected());
        assert_eq!(
            spans[&7].medians_us(),
            Some(Medians {
                request: 66.0,
                sent: 11.0,
                answer: 42.0,
                own: 119.0,
                calls: 11.5,
            })
        );
    }

    /// The streams of [`LISTING`], µs (own code: request, sent, answer; inside calls).
    /// First: its own code from the accept (5) to the request's last write (85, less 4 inside
    /// the first write) is 78; to the answer's read (302), 6 more (asleep from 95 to 295 in
    /// neither); to the last write to the client (340), 30 more (preempted 332–337 in neither).
    /// Inside calls: 21, from the accept to that write's return (345). The main thread's sleep
    /// at 335 ends nothing: it did not write. The event 6 ms later is not counted.
    /// Second: the main thread's own code after the accept (3), then the worker's to its send
    /// (51): 54; 16 to the answer's read; 54 to its write (asleep between the two reads);
    /// inside calls, the main thread's 2 going to sleep.
    fn expected() -> Vec<Stream> {
        vec![stream(78, 6, 30, 21), stream(54, 16, 54, 2)]
    }

    #[test]
    fn processes_are_read_apart_even_when_their_calls_interleave() {
        let other = LISTING
            .replace("7/8 ", "9/10 ")
            .replace("7/7 ", "9/9 ")
            .replace("_pid=8 ", "_pid=10 ")
            .replace("_pid=7 ", "_pid=9 ");
        let both: String = LISTING
            .lines()
            .zip(other.lines())
            .flat_map(|(a, b)| [a, "\n", b, "\n"])
            .collect();
        let spans = spans(&both);
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[&7].streams, expected());
        assert_eq!(spans[&9].streams, expected());
    }

    #[test]
    fn a_thread_first_seen_woken_is_inside_the_call_it_slept_in() {
        // The main thread accepts and wakes the worker, never seen before: until its `futex`
        // returns, the worker is inside a call, not running its own code.
        let handoff = "\
5/5 1.000000000: syscalls:sys_exit_accept4: 0xc
5/5 1.000002000: sched:sched_switch: prev_comm=main prev_pid=5 prev_prio=120 prev_state=S ==> next_comm=w next_pid=6 next_prio=120
5/6 1.000006000: raw_syscalls:sys_exit: NR 202 = 0
5/6 1.000016000: syscalls:sys_enter_writev: fd: 0x0000000d, vec: 0x1, vlen: 0x00000002
5/6 1.000020000: syscalls:sys_enter_recvfrom: fd: 0x0000000d, ubuf: 0x1, size: 0x100
5/6 1.000021000: syscalls:sys_exit_recvfrom: 0x80
5/6 1.000031000: syscalls:sys_enter_writev: fd: 0x0000000c, vec: 0x1, vlen: 0x00000002
";
        assert_eq!(streams_of(handoff, 5), vec![stream(12, 5, 10, 4)]);
    }

    fn streams_of(listing: &str, pid: u32) -> Vec<Stream> {
        spans(listing).remove(&pid).unwrap_or_default().streams
    }

    #[test]
    fn a_socket_reopened_upstream_is_no_longer_a_clients() {
        // fd 0xc accepted, closed and reused for a new upstream connection: writes to it are
        // upstream. No switch is listed: the thread is on its core throughout.
        let reused = "\
5/5 1.000000000: syscalls:sys_exit_accept4: 0xc
5/5 1.000010000: syscalls:sys_enter_connect: fd: 0x0000000c, uservaddr: 0x1, addrlen: 0x10
5/5 1.000020000: syscalls:sys_exit_accept4: 0xd
5/5 1.000030000: syscalls:sys_enter_recvfrom: fd: 0x0000000d, ubuf: 0x1, size: 0x100
5/5 1.000031000: syscalls:sys_exit_recvfrom: 0x80
5/5 1.000041000: syscalls:sys_enter_writev: fd: 0x0000000c, vec: 0x1, vlen: 0x00000002
5/5 1.000100000: syscalls:sys_enter_recvfrom: fd: 0x0000000c, ubuf: 0x1, size: 0x100
5/5 1.000101000: syscalls:sys_exit_recvfrom: 0x80
5/5 1.000111000: syscalls:sys_enter_writev: fd: 0x0000000d, vec: 0x1, vlen: 0x00000002
";
        assert_eq!(streams_of(reused, 5), vec![stream(21, 60, 10, 0)]);
    }

    #[test]
    fn a_stream_missing_a_call_is_dropped_and_the_next_is_read_whole() {
        // The first stream's answer is never seen read (an event lost): the next accept starts
        // afresh instead of pairing the old request with the new answer.
        let lost = "\
5/5 1.000000000: syscalls:sys_exit_accept4: 0xc
5/5 1.000010000: syscalls:sys_enter_writev: fd: 0x0000000d, vec: 0x1, vlen: 0x00000002
5/5 1.001000000: syscalls:sys_exit_accept4: 0xe
5/5 1.001010000: syscalls:sys_enter_writev: fd: 0x0000000d, vec: 0x1, vlen: 0x00000002
5/5 1.001100000: syscalls:sys_enter_recvfrom: fd: 0x0000000d, ubuf: 0x1, size: 0x100
5/5 1.001101000: syscalls:sys_exit_recvfrom: 0x80
5/5 1.001150000: syscalls:sys_enter_writev: fd: 0x0000000e, vec: 0x1, vlen: 0x00000002
";
        assert_eq!(streams_of(lost, 5), vec![stream(10, 91, 49, 0)]);
    }

    #[test]
    fn a_listing_with_no_streams_gives_no_figures() {
        assert!(spans("").is_empty());
        assert_eq!(Spans::default().medians_us(), None);
        assert!(spans("garbage\n1/1 x: y").is_empty());
    }

    #[test]
    fn perfs_reason_is_its_first_lines_that_say_something() {
        let said = "Error:\nNo permissions to read /sys/kernel/tracing/events/syscalls\nHint: run as root\nmore\n";
        assert_eq!(
            reason(said),
            "No permissions to read /sys/kernel/tracing/events/syscalls Hint: run as root"
        );
        assert_eq!(reason("\n"), "no message");
    }
}
