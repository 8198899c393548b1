//! A proxy's own time before a stream's first byte, read from the kernel's record of its
//! socket calls (`perf record` on the syscall tracepoints), so that nothing in the proxies is
//! instrumented and the floor and the sidecar are read the same way.
//!
//! Per stream, two spans on the proxy's core:
//! - **request**: from the return of the last read of the client's request to the call that
//!   sends it upstream;
//! - **answer**: from the return of the last read of the upstream's answer to the first call
//!   that writes to the client.
//!
//! Their sum is what the proxy itself adds before the first byte. What lies outside them —
//! reaching the proxy's core, the upstream's own time, the socket calls themselves — is the
//! platform's and the upstream's, paid by any proxy.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The syscalls read: connections accepted (client sockets) and opened (upstream sockets),
/// reads, and the two ways hyper writes.
const EVENTS: &[&str] = &[
    "syscalls:sys_exit_accept4",
    "syscalls:sys_enter_connect",
    "syscalls:sys_enter_recvfrom",
    "syscalls:sys_exit_recvfrom",
    "syscalls:sys_enter_writev",
    "syscalls:sys_enter_sendto",
];

/// One proxy's spans, one pair per stream, ns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Spans {
    /// (request, answer) per stream, in order.
    pub streams: Vec<(u64, u64)>,
}

impl Spans {
    /// Medians of the request span, the answer span and their sum per stream, µs.
    pub fn medians_us(&self) -> Option<(f64, f64, f64)> {
        if self.streams.is_empty() {
            return None;
        }
        let median = |mut v: Vec<u64>| {
            v.sort_unstable();
            v[v.len() / 2] as f64 / 1000.0
        };
        Some((
            median(self.streams.iter().map(|s| s.0).collect()),
            median(self.streams.iter().map(|s| s.1).collect()),
            median(self.streams.iter().map(|s| s.0 + s.1).collect()),
        ))
    }
}

/// A `perf record` of some processes' socket calls, running.
pub struct Recording {
    child: Child,
    data: PathBuf,
    pids: Vec<u32>,
}

impl Recording {
    /// Starts recording the socket calls of `pids` into `dir`. Fails with the reason when `perf` cannot: not
    /// installed, or not allowed to read the tracepoints.
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
        // perf attaches to every thread before it records; a run that has ended by now failed.
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Ok(Some(status)) = child.try_wait() {
            let mut why = String::new();
            if let Some(mut err) = child.stderr.take() {
                use std::io::Read as _;
                let _ = err.read_to_string(&mut why);
            }
            let why = why.lines().next().unwrap_or("no message").trim().to_owned();
            return Err(format!("perf record ended at once ({status}): {why}"));
        }
        Ok(Recording {
            child,
            data,
            pids: pids.to_vec(),
        })
    }

    /// Stops recording and reads the spans of each process recorded.
    pub fn finish(mut self) -> Result<HashMap<u32, Spans>, String> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let _ = self.child.wait();
        let out = Command::new("perf")
            .args(["script", "--ns", "-F", "pid,tid,time,event,trace", "-i"])
            .arg(&self.data)
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("perf script could not be run: {e}"))?;
        let _ = std::fs::remove_file(&self.data);
        if !out.status.success() {
            return Err(format!("perf script failed ({})", out.status));
        }
        let mut all = spans(&String::from_utf8_lossy(&out.stdout));
        all.retain(|pid, _| self.pids.contains(pid));
        Ok(all)
    }
}

/// Where a proxy is in the stream it is serving.
#[derive(Clone, Copy, Debug)]
enum Stage {
    /// Between streams, or past a stream's first byte.
    Idle,
    /// Reading the request: when its last read returned.
    Request(u64),
    /// Sent upstream: the request span, waiting for the answer.
    Sent(u64),
    /// Reading the answer: the request span and when its last read returned.
    Answer(u64, u64),
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
        event: event.strip_prefix("syscalls:")?,
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

/// The spans of every process in a `perf script` listing of [`EVENTS`], streams served one at
/// a time by each. Client sockets are those accepted in the listing; every other socket is
/// upstream (pooled connections may predate the recording).
pub fn spans(script: &str) -> HashMap<u32, Spans> {
    let mut clients: HashMap<u32, std::collections::HashSet<i64>> = HashMap::new();
    let mut stage: HashMap<u32, Stage> = HashMap::new();
    // The fd of each thread's read in progress, for its exit.
    let mut reading: HashMap<u32, i64> = HashMap::new();
    let mut out: HashMap<u32, Spans> = HashMap::new();
    for c in script.lines().filter_map(parse_line) {
        let client = |fd: i64| clients.get(&c.pid).is_some_and(|s| s.contains(&fd));
        let now = *stage.get(&c.pid).unwrap_or(&Stage::Idle);
        match c.event {
            "sys_exit_accept4" => {
                if let Some(fd) = number(c.trace) {
                    clients.entry(c.pid).or_default().insert(fd);
                }
            }
            "sys_enter_connect" => {
                if let Some(fd) = number(c.trace) {
                    clients.entry(c.pid).or_default().remove(&fd);
                }
            }
            "sys_enter_recvfrom" => {
                if let Some(fd) = number(c.trace) {
                    reading.insert(c.tid, fd);
                }
            }
            "sys_exit_recvfrom" => {
                let Some(fd) = reading.remove(&c.tid) else {
                    continue;
                };
                // Nothing read (would block, or the end): no stage moves.
                if number(c.trace).is_none_or(|n| n == 0) {
                    continue;
                }
                let next = match (client(fd), now) {
                    (true, Stage::Idle | Stage::Request(_)) => Stage::Request(c.ns),
                    (false, Stage::Sent(req) | Stage::Answer(req, _)) => Stage::Answer(req, c.ns),
                    (_, other) => other,
                };
                stage.insert(c.pid, next);
            }
            "sys_enter_writev" | "sys_enter_sendto" => {
                let Some(fd) = number(c.trace) else {
                    continue;
                };
                let next = match (client(fd), now) {
                    (false, Stage::Request(read)) => Stage::Sent(c.ns.saturating_sub(read)),
                    (true, Stage::Answer(req, read)) => {
                        out.entry(c.pid)
                            .or_default()
                            .streams
                            .push((req, c.ns.saturating_sub(read)));
                        Stage::Idle
                    }
                    (_, other) => other,
                };
                stage.insert(c.pid, next);
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two streams through one proxy (pid 7, worker 8) as `perf script` lists them: the
    /// upstream connection is pooled (opened before the recording), each client connects anew.
    const LISTING: &str = "\
7/7 100.000000000: syscalls:sys_exit_accept4: 0xc
7/8 100.000010000: syscalls:sys_enter_recvfrom: fd: 0x0000000c, ubuf: 0x1, size: 0x00000018
7/8 100.000011000: syscalls:sys_exit_recvfrom: 0x18
7/8 100.000020000: syscalls:sys_enter_recvfrom: fd: 0x0000000c, ubuf: 0x1, size: 0x00003fe8
7/8 100.000021000: syscalls:sys_exit_recvfrom: 0xbf
7/8 100.000081000: syscalls:sys_enter_writev: fd: 0x0000000d, vec: 0x1, vlen: 0x00000002
7/8 100.000090000: syscalls:sys_enter_recvfrom: fd: 0x0000000d, ubuf: 0x1, size: 0x00002000
7/8 100.000091000: syscalls:sys_exit_recvfrom: 0xfffffffffffffff5
7/8 100.000300000: syscalls:sys_enter_recvfrom: fd: 0x0000000d, ubuf: 0x1, size: 0x00002000
7/8 100.000302000: syscalls:sys_exit_recvfrom: 0x2dc
7/8 100.000330000: syscalls:sys_enter_writev: fd: 0x0000000c, vec: 0x1, vlen: 0x00000004
7/8 100.000340000: syscalls:sys_enter_writev: fd: 0x0000000c, vec: 0x1, vlen: 0x00000003
7/8 100.006000000: syscalls:sys_enter_recvfrom: fd: 0x0000000d, ubuf: 0x1, size: 0x00002000
7/8 100.006001000: syscalls:sys_exit_recvfrom: 0xfd
7/8 100.006020000: syscalls:sys_enter_writev: fd: 0x0000000c, vec: 0x1, vlen: 0x00000003
7/8 100.100000000: syscalls:sys_exit_accept4: 0xe
7/8 100.100010000: syscalls:sys_enter_recvfrom: fd: 0x0000000e, ubuf: 0x1, size: 0x00003fe8
7/8 100.100011000: syscalls:sys_exit_recvfrom: 0xbf
7/8 100.100061000: syscalls:sys_enter_sendto: fd: 0x0000000d, buff: 0x1, len: 0xbf
7/8 100.100300000: syscalls:sys_enter_recvfrom: fd: 0x0000000d, ubuf: 0x1, size: 0x00002000
7/8 100.100302000: syscalls:sys_exit_recvfrom: 0x100
7/8 100.100400000: syscalls:sys_enter_recvfrom: fd: 0x0000000d, ubuf: 0x1, size: 0x00002000
7/8 100.100401000: syscalls:sys_exit_recvfrom: 0x80
7/8 100.100441000: syscalls:sys_enter_writev: fd: 0x0000000e, vec: 0x1, vlen: 0x00000007
";

    #[test]
    fn each_stream_gives_the_proxys_time_after_its_last_read_of_the_request_and_of_the_answer() {
        let spans = spans(LISTING);
        assert_eq!(spans.len(), 1);
        // Request: read at 21 µs, sent upstream at 81 µs. Answer: read at 302 µs (the read
        // that would block moves nothing), first write to the client at 330 µs; the events
        // after the first byte are not counted.
        // The second stream waits for a second read of the answer (a hold): its span starts
        // at the last read.
        assert_eq!(spans[&7].streams, vec![(60_000, 28_000), (50_000, 40_000)]);
        assert_eq!(spans[&7].medians_us(), Some((60.0, 40.0, 90.0)));
    }

    #[test]
    fn processes_are_read_apart_and_a_socket_reopened_upstream_is_no_longer_a_clients() {
        let listing = LISTING.replace("7/", "9/");
        let both = format!("{LISTING}{listing}");
        let spans = spans(&both);
        assert_eq!(spans[&7], spans[&9]);
        // fd 0xc closed and reused for a new upstream connection: writes to it are upstream.
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
        assert_eq!(spans_of(reused, 5), vec![(10_000, 10_000)]);
    }

    fn spans_of(listing: &str, pid: u32) -> Vec<(u64, u64)> {
        spans(listing).remove(&pid).unwrap_or_default().streams
    }

    #[test]
    fn a_listing_with_no_streams_gives_no_figures() {
        assert!(spans("").is_empty());
        assert_eq!(Spans::default().medians_us(), None);
        assert!(spans("garbage\n1/1 x: y").is_empty());
    }
}
