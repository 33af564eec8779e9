//! The exporter with its log going nowhere: stderr a pipe whose reader has gone, at once or
//! later, or one that nobody reads any more. It keeps serving and SIGTERM still stops it.
//! (Linux: a port is found through /proc, and a pipe's size is set with fcntl.)
#![cfg(target_os = "linux")]

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::procs::{Proc, exporter_command, try_get};

/// A new pipe: its read end and its write end.
fn pipe() -> (File, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors; each is owned exactly once below.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both were just opened and are not used elsewhere.
    unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// `exporter --demo` on a port of its own with `rust_log`, its stderr the write end `log`.
fn spawn_demo(rust_log: &str, log: OwnedFd) -> Proc {
    Proc::spawn(
        exporter_command(
            &[
                ("DEVIN_LISTEN_ADDRESS", "127.0.0.1:0"),
                ("RUST_LOG", rust_log),
            ],
            &["--demo"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::from(log)),
        "exporter",
    )
}

/// The TCP ports `pid` listens on, for a process whose log cannot tell them.
fn listening_ports(pid: u32) -> Vec<u16> {
    let sockets: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|l| {
            Some(
                l.to_str()?
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .into(),
            )
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            // local_address (hex ip:port), rem_address, st (0A is LISTEN), ..., inode.
            let f: Vec<&str> = line.split_whitespace().collect();
            let listening =
                f.get(3) == Some(&"0A") && sockets.iter().any(|s| f.get(9) == Some(&s.as_str()));
            let port = f.get(1)?.rsplit_once(':')?.1;
            listening.then(|| u16::from_str_radix(port, 16).ok())?
        })
        .collect()
}

/// The exporter's base URL, once it serves: of the ports it listens on, the one whose
/// `/metrics` says demo mode (the other is its simulator's). Fails if it exits first.
fn serving_url(proc: &mut Proc) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = proc.child.try_wait().unwrap() {
            panic!("the exporter exited: {status}");
        }
        for port in listening_ports(proc.child.id()) {
            let url = format!("http://127.0.0.1:{port}");
            if try_get(&format!("{url}/metrics"))
                .is_some_and(|body| body.contains("\ndevin_exporter_demo_mode 1\n"))
            {
                return url;
            }
        }
        assert!(Instant::now() < deadline, "the exporter does not serve");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads `log` up to the line saying where the exporter listens; returns its base URL.
fn read_until_listening(log: &mut BufReader<File>) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(log.read_line(&mut line).unwrap() > 0, "log ended");
        if let Some((_, rest)) = line.split_once(" listening addr=") {
            let addr = rest.split_whitespace().next().unwrap();
            return format!("http://{addr}");
        }
    }
}

/// Asserts that SIGTERM stops `proc` promptly with exit status 0.
fn assert_terminates_cleanly(mut proc: Proc) {
    let status = proc.terminate();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn a_log_reader_gone_at_start_neither_kills_it_nor_keeps_it_from_stopping() {
    // `devin-exporter --demo 2>&1 | head -1`, with head gone before the first line.
    let (read, write) = pipe();
    drop(read);
    let mut proc = spawn_demo("debug", write);
    let url = serving_url(&mut proc);
    assert!(try_get(&format!("{url}/metrics")).is_some(), "serves again");
    assert_terminates_cleanly(proc);
}

#[test]
fn a_log_reader_gone_later_does_not_keep_it_from_stopping() {
    let (read, write) = pipe();
    let proc = spawn_demo("info", write);
    let mut log = BufReader::new(read);
    let url = read_until_listening(&mut log);
    // The first scrape's lines (the first listings) still find a reader.
    assert!(try_get(&format!("{url}/metrics")).is_some(), "serves");
    drop(log);
    // Later scrapes log nothing at info level: the first line to meet the broken pipe is the
    // one that SIGTERM brings.
    assert!(try_get(&format!("{url}/metrics")).is_some(), "serves on");
    assert_terminates_cleanly(proc);
}

#[test]
fn a_log_nobody_reads_does_not_block_serving_or_stopping() {
    let (read, write) = pipe();
    // The smallest pipe (a page): the lines of one scrape at trace level fill it many times.
    // SAFETY: fcntl on a descriptor this test owns.
    let capacity = unsafe { libc::fcntl(read.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert!(capacity > 0, "pipe size set");
    let proc = spawn_demo("trace", write);
    let mut log = BufReader::new(read);
    let url = read_until_listening(&mut log);
    // From here on nobody reads: the pipe fills and the exporter's writes to it would block.
    for _ in 0..3 {
        assert!(try_get(&format!("{url}/metrics")).is_some(), "serves");
    }
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int, the bytes waiting in the pipe.
    assert_eq!(
        unsafe { libc::ioctl(log.get_ref().as_raw_fd(), libc::FIONREAD, &mut queued) },
        0
    );
    assert!(
        queued > capacity / 2,
        "the pipe filled up: {queued} of {capacity} bytes"
    );
    assert_terminates_cleanly(proc);
}

#[test]
fn a_configuration_error_with_stderr_gone_still_exits_2() {
    let (read, write) = pipe();
    drop(read);
    let status = exporter_command(&[("DEVIN_PAGE_SIZE", "500")], &[])
        .stdout(Stdio::null())
        .stderr(Stdio::from(write))
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2), "{status}");
}
