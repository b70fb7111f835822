//! System probes from Linux `/proc`: CPU time and memory of a process (the server under test or
//! the load tester itself), the kernel's TCP memory, and the open-file limit.
//!
//! Every probe returns an `io::Result` or a plain value and never panics on odd content: a
//! field that is missing or not a number is an [`io::ErrorKind::InvalidData`] error. The
//! parsers take `&str` so that they are tested on fixed samples; the public functions only read
//! the file and call them.
//!
//! On systems without `/proc` (macOS, BSD) the `/proc` probes fail with
//! [`io::ErrorKind::NotFound`]; [`own_cpu`] and the open-file functions still work there.

use std::fs;
use std::io;
use std::time::Duration;

/// CPU time (user + system) that the process `pid` has used so far, all its threads together.
///
/// Read from `/proc/PID/stat` (fields 14 `utime` and 15 `stime`, in clock ticks of
/// `sysconf(_SC_CLK_TCK)`, usually 10 ms), so the resolution is one tick.
///
/// # Errors
///
/// The file cannot be read (no such process, no `/proc`) or does not have the expected fields.
pub fn process_cpu(pid: u32) -> io::Result<Duration> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let stat = parse_stat(&text).ok_or_else(|| invalid("unexpected content in /proc/PID/stat"))?;
    Ok(ticks_to_duration(stat.ticks(), sys::clock_ticks()))
}

/// Resident set size of the process `pid` in bytes (`VmRSS` of `/proc/PID/status`).
///
/// # Errors
///
/// The file cannot be read, or has no `VmRSS` line (a kernel thread or a zombie has none).
pub fn process_rss(pid: u32) -> io::Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status_rss(&text).ok_or_else(|| invalid("no VmRSS line in /proc/PID/status"))
}

/// CPU time (user + system) of this process so far, all threads together (`getrusage` with
/// `RUSAGE_SELF`, microsecond resolution). Zero if the call fails, which it does not on Linux.
pub fn own_cpu() -> Duration {
    sys::own_rusage().unwrap_or(Duration::ZERO)
}

/// CPU time of each thread of this process: `(thread name, user + system time)` from
/// `/proc/self/task/*/stat`, in thread-id order.
///
/// A load tester compares these with the wall time of a run: one of its own workers near 100 %
/// of a core means the tester, not the server, set the pace. Threads that exit while the
/// directory is read are left out. Empty where `/proc` is missing.
pub fn own_threads_cpu() -> Vec<(String, Duration)> {
    threads_cpu("self").unwrap_or_default()
}

/// CPU time of each thread of the process `pid`, as [`own_threads_cpu`] gives for this one
/// (useful on the server under test: a saturated worker shows there).
///
/// # Errors
///
/// `/proc/PID/task` cannot be listed (no such process, no `/proc`).
pub fn process_threads_cpu(pid: u32) -> io::Result<Vec<(String, Duration)>> {
    threads_cpu(&pid.to_string())
}

/// CPU time of each thread of this process with its thread id: `(tid, name, time)`, in
/// thread-id order (so that a caller can tell its own threads from others started before).
pub fn own_threads() -> Vec<(u64, String, Duration)> {
    threads_with_ids("self").unwrap_or_default()
}

fn threads_cpu(pid: &str) -> io::Result<Vec<(String, Duration)>> {
    Ok(threads_with_ids(pid)?
        .into_iter()
        .map(|(_, name, cpu)| (name, cpu))
        .collect())
}

fn threads_with_ids(pid: &str) -> io::Result<Vec<(u64, String, Duration)>> {
    let hz = sys::clock_ticks();
    let mut threads = Vec::new();
    for entry in fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(entry) = entry else { continue };
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        // A thread may exit between the listing and the read: it is simply not reported.
        let Ok(text) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some(stat) = parse_stat(&text) {
            threads.push((
                tid,
                stat.name.to_owned(),
                ticks_to_duration(stat.ticks(), hz),
            ));
        }
    }
    threads.sort_by_key(|t| t.0);
    Ok(threads)
}

/// The slab caches that grow with TCP connections, and so go into [`KernelMem::slab`]:
/// the sockets themselves (`TCP`, `TCPv6`), half-open (`request_sock_*`) and `TIME_WAIT`
/// (`tw_sock_*`) ones, the socket's inode and file (`sock_inode_cache`, `dentry`, `filp`), its
/// epoll registration (`eventpoll_epi`, and `eventpoll_pwq` on kernels that still have it) and
/// socket buffer heads (`skbuff_*`).
///
/// `kmalloc-*` caches are left out on purpose: every part of the kernel allocates from them,
/// so their growth during a run says little about sockets, and a run that counted them would
/// charge unrelated activity to each connection. `dentry` and `filp` also grow with file-system
/// activity: measure deltas on an otherwise quiet machine. A cache that the allocator merged
/// into another (SLUB merging; `/sys/kernel/slab/NAME` is then a link) has no line of its own;
/// [`KernelMem::slab_note`] names the ones that were missing.
pub const TCP_SLABS: &[&str] = &[
    "TCP",
    "TCPv6",
    "request_sock_TCP",
    "request_sock_TCPv6",
    "tw_sock_TCP",
    "tw_sock_TCPv6",
    "sock_inode_cache",
    "dentry",
    "filp",
    "eventpoll_epi",
    "eventpoll_pwq",
    "skbuff_head_cache",
    "skbuff_fclone_cache",
    "skbuff_small_head",
];

/// One line of `/proc/slabinfo`: a kernel object cache and what its live objects take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlabLine {
    /// The cache's name, e.g. `TCP`.
    pub name: String,
    /// Objects in use.
    pub active_objs: u64,
    /// Size of one object in bytes, as the cache allocates it.
    pub objsize: u64,
    /// `active_objs × objsize`: the memory the live objects take (the slab pages that hold
    /// them are a little more, by the free slots).
    pub bytes: u64,
}

/// The kernel's memory for TCP, from `/proc/net/sockstat` and `/proc/slabinfo`.
///
/// The socket counts are those of this network namespace and cover IPv4 sockets (`inuse`,
/// `orphan`, `tw`; IPv6 ones are counted in `/proc/net/sockstat6`), while `alloc` and `mem`
/// cover both families. Take one snapshot before a run and one after, then
/// [`delta`](Self::delta) and [`bytes_total`](Self::bytes_total) give the kernel memory the
/// run's connections added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelMem {
    /// TCP sockets in use (`inuse`): established, listening and closing ones.
    pub tcp_inuse: u64,
    /// Sockets no longer attached to a file but not yet gone (`orphan`).
    pub tcp_orphan: u64,
    /// Sockets in `TIME_WAIT` (`tw`).
    pub tcp_tw: u64,
    /// TCP sockets allocated (`alloc`), both families.
    pub tcp_alloc: u64,
    /// Memory charged to TCP socket buffers, in bytes (`mem`, which the kernel gives in pages,
    /// times the page size): data queued to send or not yet read.
    pub tcp_mem_bytes: u64,
    /// The [`TCP_SLABS`] caches present in `/proc/slabinfo`, in that order; empty when the file
    /// cannot be read (it needs root).
    pub slab: Vec<SlabLine>,
    /// Why `slab` is empty or short: the file was unreadable, or some caches were missing.
    pub slab_note: Option<String>,
}

impl KernelMem {
    /// The growth from `before` to `self`: each count and size is `self − before`, a value that
    /// fell reads 0 (a growth, not a balance). Slab lines are matched by name; a cache missing
    /// in `before` counts from zero. `slab_note` is `self`'s.
    #[must_use]
    pub fn delta(&self, before: &KernelMem) -> KernelMem {
        let slab = self
            .slab
            .iter()
            .map(|line| {
                let old = before.slab.iter().find(|b| b.name == line.name);
                SlabLine {
                    name: line.name.clone(),
                    active_objs: line
                        .active_objs
                        .saturating_sub(old.map_or(0, |b| b.active_objs)),
                    objsize: line.objsize,
                    bytes: line.bytes.saturating_sub(old.map_or(0, |b| b.bytes)),
                }
            })
            .collect();
        KernelMem {
            tcp_inuse: self.tcp_inuse.saturating_sub(before.tcp_inuse),
            tcp_orphan: self.tcp_orphan.saturating_sub(before.tcp_orphan),
            tcp_tw: self.tcp_tw.saturating_sub(before.tcp_tw),
            tcp_alloc: self.tcp_alloc.saturating_sub(before.tcp_alloc),
            tcp_mem_bytes: self.tcp_mem_bytes.saturating_sub(before.tcp_mem_bytes),
            slab,
            slab_note: self.slab_note.clone(),
        }
    }

    /// The bytes of all slab lines plus `tcp_mem_bytes`: on a delta, the kernel memory a run
    /// added (divide by the connections opened for a per-connection figure).
    #[must_use]
    pub fn bytes_total(&self) -> u64 {
        self.slab.iter().fold(self.tcp_mem_bytes, |sum, line| {
            sum.saturating_add(line.bytes)
        })
    }
}

/// A snapshot of the kernel's TCP memory (see [`KernelMem`]).
///
/// `/proc/slabinfo` is readable only by root: without it the slab lines are empty and
/// [`KernelMem::slab_note`] says why; the `sockstat` figures are there either way.
///
/// # Errors
///
/// `/proc/net/sockstat` cannot be read or has no `TCP:` line.
pub fn kernel_mem() -> io::Result<KernelMem> {
    let text = fs::read_to_string("/proc/net/sockstat")?;
    let mut mem = parse_sockstat(&text, sys::page_size())
        .ok_or_else(|| invalid("no TCP line in /proc/net/sockstat"))?;
    add_slab(&mut mem, fs::read_to_string("/proc/slabinfo"));
    Ok(mem)
}

/// Fills `mem.slab` from the text of `/proc/slabinfo`, or notes why it could not be read.
fn add_slab(mem: &mut KernelMem, slabinfo: io::Result<String>) {
    match slabinfo {
        Ok(text) => {
            mem.slab = parse_slabinfo(&text, TCP_SLABS);
            let missing: Vec<&str> = TCP_SLABS
                .iter()
                .copied()
                .filter(|name| !mem.slab.iter().any(|l| l.name == *name))
                .collect();
            mem.slab_note = (!missing.is_empty()).then(|| {
                format!(
                    "not in /proc/slabinfo (merged into another cache, or not in this kernel): {}",
                    missing.join(", ")
                )
            });
        }
        Err(e) => {
            mem.slab = Vec::new();
            mem.slab_note = Some(format!(
                "/proc/slabinfo unreadable ({e}); kernel memory is sockstat's only (root can read it)"
            ));
        }
    }
}

/// The open-file limit of this process: `(soft, hard)` (`RLIMIT_NOFILE`). An unlimited value
/// reads `u64::MAX`; `(0, 0)` if the call fails.
pub fn nofile_limit() -> (u64, u64) {
    sys::nofile().unwrap_or((0, 0))
}

/// Raises the soft open-file limit to the hard one and returns the soft limit now in force
/// (the old one if it could not be raised). An unlimited hard limit is taken as
/// `/proc/sys/fs/nr_open`, the most the kernel lets a process have.
///
/// Each connection takes one descriptor: a run of C connections needs a soft limit above C.
pub fn raise_nofile() -> u64 {
    let (soft, hard) = nofile_limit();
    if soft >= hard {
        return soft;
    }
    let target = if hard == u64::MAX {
        nr_open().max(soft)
    } else {
        hard
    };
    if sys::set_nofile(target, hard).is_ok() {
        nofile_limit().0
    } else {
        soft
    }
}

/// Raises the open-file limit to `want` descriptors (capped at `/proc/sys/fs/nr_open`),
/// lifting the hard limit too where the process may (root with `CAP_SYS_RESOURCE`; a
/// container often lacks it), else as far as [`raise_nofile`] goes. Returns the soft limit now
/// in force, which may be below `want`: a run of a million connections needs it checked.
pub fn raise_nofile_to(want: u64) -> u64 {
    let (soft, hard) = nofile_limit();
    let want = want.min(nr_open());
    if want <= soft {
        return soft;
    }
    if want > hard && hard != u64::MAX && sys::set_nofile(want, want).is_ok() {
        return nofile_limit().0;
    }
    let target = want.min(if hard == u64::MAX { want } else { hard });
    if sys::set_nofile(target, hard).is_ok() {
        nofile_limit().0
    } else {
        soft
    }
}

/// `/proc/sys/fs/nr_open`, the most descriptors the kernel lets one process have (2^20 if
/// unknown, the kernel's default).
fn nr_open() -> u64 {
    fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20)
}

/// The parts of a `/proc/PID/stat` (or `task/TID/stat`) line that the probes use.
#[derive(Debug, PartialEq, Eq)]
struct Stat<'a> {
    /// Field 2, without its parentheses (the thread or command name, up to 15 bytes).
    name: &'a str,
    /// Field 14, user time in clock ticks.
    utime: u64,
    /// Field 15, system time in clock ticks.
    stime: u64,
}

impl Stat<'_> {
    fn ticks(&self) -> u64 {
        self.utime.saturating_add(self.stime)
    }
}

/// Parses a `/proc/PID/stat` line. The name (field 2) may hold spaces and parentheses, so the
/// fields are counted after the last `)`.
fn parse_stat(text: &str) -> Option<Stat<'_>> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?;
    // After the name: field 3 (state) is the first, so fields 14 and 15 are the 12th and 13th.
    let mut rest = text.get(close + 1..)?.split_ascii_whitespace().skip(11);
    let utime = rest.next()?.parse().ok()?;
    let stime = rest.next()?.parse().ok()?;
    Some(Stat { name, utime, stime })
}

/// The `VmRSS` of a `/proc/PID/status` text, in bytes.
fn parse_status_rss(text: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let mut parts = line.split_ascii_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    let unit = match parts.next() {
        Some(u) if u.eq_ignore_ascii_case("kb") => 1024,
        Some(u) if u.eq_ignore_ascii_case("mb") => 1024 * 1024,
        None => 1,
        Some(_) => return None,
    };
    value.checked_mul(unit)
}

/// The `TCP:` line of `/proc/net/sockstat`, with `mem` turned from pages into bytes.
fn parse_sockstat(text: &str, page_size: u64) -> Option<KernelMem> {
    let line = text.lines().find_map(|l| l.strip_prefix("TCP:"))?;
    let mut mem = KernelMem::default();
    let mut words = line.split_ascii_whitespace();
    let mut seen_inuse = false;
    while let (Some(key), Some(value)) = (words.next(), words.next()) {
        let value: u64 = value.parse().ok()?;
        match key {
            "inuse" => {
                mem.tcp_inuse = value;
                seen_inuse = true;
            }
            "orphan" => mem.tcp_orphan = value,
            "tw" => mem.tcp_tw = value,
            "alloc" => mem.tcp_alloc = value,
            "mem" => mem.tcp_mem_bytes = value.saturating_mul(page_size),
            _ => {}
        }
    }
    seen_inuse.then_some(mem)
}

/// The lines of `/proc/slabinfo` (version 2.x: `name active_objs num_objs objsize …`) whose
/// cache is in `names`, in the order of `names`. Malformed lines are skipped.
fn parse_slabinfo(text: &str, names: &[&str]) -> Vec<SlabLine> {
    let mut found: Vec<SlabLine> = text
        .lines()
        .filter(|l| !l.starts_with("slabinfo") && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split_ascii_whitespace();
            let name = f.next()?;
            if !names.contains(&name) {
                return None;
            }
            let active_objs: u64 = f.next()?.parse().ok()?;
            let _num_objs: u64 = f.next()?.parse().ok()?;
            let objsize: u64 = f.next()?.parse().ok()?;
            Some(SlabLine {
                name: name.to_owned(),
                active_objs,
                objsize,
                bytes: active_objs.saturating_mul(objsize),
            })
        })
        .collect();
    found.sort_by_key(|l| names.iter().position(|n| *n == l.name));
    found.dedup_by(|a, b| a.name == b.name);
    found
}

/// `ticks` clock ticks at `hz` per second, without overflow or a division by zero.
fn ticks_to_duration(ticks: u64, hz: u64) -> Duration {
    let hz = if hz == 0 { 100 } else { hz };
    let nanos = (ticks % hz) * 1_000_000_000 / hz;
    Duration::new(ticks / hz, u32::try_from(nanos).unwrap_or(0))
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// The libc calls, all of the crate's `unsafe` for these probes.
#[allow(unsafe_code)] // getrusage, getrlimit, setrlimit and sysconf have no safe std wrapper
mod sys {
    use std::io;
    use std::time::Duration;

    /// `sysconf(_SC_CLK_TCK)`, the unit of `/proc/PID/stat` times; 100 if unknown.
    pub(super) fn clock_ticks() -> u64 {
        // SAFETY: sysconf takes a plain integer and touches no memory of ours.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100)
    }

    /// `sysconf(_SC_PAGESIZE)`, the unit of `/proc/net/sockstat`'s `mem`; 4096 if unknown.
    pub(super) fn page_size() -> u64 {
        // SAFETY: sysconf takes a plain integer and touches no memory of ours.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
    }

    /// User + system time of this process (`getrusage(RUSAGE_SELF)`).
    pub(super) fn own_rusage() -> io::Result<Duration> {
        // SAFETY: rusage is plain old data: all zeroes is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `usage` is a valid, writable rusage that outlives the call.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(timeval(usage.ru_utime) + timeval(usage.ru_stime))
    }

    fn timeval(t: libc::timeval) -> Duration {
        let secs = u64::try_from(t.tv_sec).unwrap_or(0);
        let micros = u64::try_from(t.tv_usec).unwrap_or(0).min(999_999);
        Duration::from_secs(secs) + Duration::from_micros(micros)
    }

    /// `RLIMIT_NOFILE` as `(soft, hard)`, `RLIM_INFINITY` as `u64::MAX`.
    pub(super) fn nofile() -> io::Result<(u64, u64)> {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is a valid, writable rlimit that outlives the call.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((to_u64(limit.rlim_cur), to_u64(limit.rlim_max)))
    }

    /// Sets `RLIMIT_NOFILE` to `soft` and `hard`.
    pub(super) fn set_nofile(soft: u64, hard: u64) -> io::Result<()> {
        let limit = libc::rlimit {
            rlim_cur: from_u64(soft),
            rlim_max: from_u64(hard),
        };
        // SAFETY: `limit` is a valid rlimit that outlives the call; the kernel only reads it.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    #[allow(clippy::useless_conversion)] // rlim_t is u64 on Linux, not on every target
    fn to_u64(v: libc::rlim_t) -> u64 {
        if v == libc::RLIM_INFINITY {
            u64::MAX
        } else {
            u64::try_from(v).unwrap_or(u64::MAX)
        }
    }

    #[allow(clippy::useless_conversion)] // rlim_t is u64 on Linux, not on every target
    fn from_u64(v: u64) -> libc::rlim_t {
        if v == u64::MAX {
            libc::RLIM_INFINITY
        } else {
            libc::rlim_t::try_from(v).unwrap_or(libc::RLIM_INFINITY)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real line of a process whose name holds a space and parentheses.
    const STAT: &str = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1200 0 3 0 \
                        731 158 0 0 20 0 9 0 123456 1073741824 2560 18446744073709551615 \
                        1 1 0 0 0 0 0 4096 17415 0 0 0 17 1 0 0 0 0 0\n";

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let stat = parse_stat(STAT).expect("parses");
        assert_eq!(stat.name, "my (odd) name");
        assert_eq!(stat.utime, 731);
        assert_eq!(stat.stime, 158);
        assert_eq!(stat.ticks(), 889);
    }

    #[test]
    fn stat_with_a_plain_name() {
        let line = "1 (systemd) S 0 1 1 0 -1 4194560 50000 0 100 0 12 34 0 0 20 0 1 0 5 0 0";
        let stat = parse_stat(line).expect("parses");
        assert_eq!((stat.name, stat.utime, stat.stime), ("systemd", 12, 34));
    }

    #[test]
    fn odd_stat_text_is_none_not_a_panic() {
        for text in [
            "",
            "(",
            ")(",
            "12 (name",
            "12 name) S 1 2",
            "12 (x) S 1 2 3 4 5 6 7 8 9 10",
            "12 (x) S 1 2 3 4 5 6 7 8 9 10 11 notanumber 13",
            "12 (x) S 1 2 3 4 5 6 7 8 9 10 -5 6",
        ] {
            assert_eq!(parse_stat(text), None, "{text:?}");
        }
        let stat = parse_stat("12 (\u{e9}) S 1 2 3 4 5 6 7 8 9 10 11 12").expect("parses");
        assert_eq!((stat.name, stat.utime, stat.stime), ("\u{e9}", 11, 12));
    }

    #[test]
    fn ticks_become_durations() {
        assert_eq!(ticks_to_duration(889, 100), Duration::from_millis(8890));
        assert_eq!(ticks_to_duration(3, 1000), Duration::from_millis(3));
        assert_eq!(ticks_to_duration(1, 3), Duration::from_nanos(333_333_333));
        // A zero rate is taken as the usual 100 Hz rather than dividing by zero.
        assert_eq!(ticks_to_duration(50, 0), Duration::from_millis(500));
        assert_eq!(ticks_to_duration(u64::MAX, 100).as_secs(), u64::MAX / 100);
    }

    const STATUS: &str = "Name:\tcat\nUmask:\t0022\nState:\tR (running)\nVmPeak:\t    9760 kB\n\
                          VmSize:\t    9760 kB\nVmHWM:\t    1536 kB\nVmRSS:\t    1536 kB\n\
                          RssAnon:\t      88 kB\nThreads:\t1\n";

    #[test]
    fn rss_comes_from_vmrss_in_kib() {
        assert_eq!(parse_status_rss(STATUS), Some(1536 * 1024));
        // A kernel thread has no VmRSS line.
        assert_eq!(
            parse_status_rss("Name:\tkthreadd\nState:\tS (sleeping)\n"),
            None
        );
        assert_eq!(parse_status_rss("VmRSS:\t  lots kB\n"), None);
        assert_eq!(parse_status_rss("VmRSS:\t  12 parsecs\n"), None);
        assert_eq!(parse_status_rss("VmRSS:\n"), None);
        assert_eq!(parse_status_rss("VmRSS: 18446744073709551615 kB\n"), None);
    }

    const SOCKSTAT: &str = "sockets: used 1012\n\
                            TCP: inuse 1004 orphan 2 tw 37 alloc 1010 mem 260\n\
                            UDP: inuse 3 mem 1\nUDPLITE: inuse 0\nRAW: inuse 0\n\
                            FRAG: inuse 0 memory 0\n";

    #[test]
    fn sockstat_mem_is_in_pages() {
        let mem = parse_sockstat(SOCKSTAT, 4096).expect("parses");
        assert_eq!(mem.tcp_inuse, 1004);
        assert_eq!(mem.tcp_orphan, 2);
        assert_eq!(mem.tcp_tw, 37);
        assert_eq!(mem.tcp_alloc, 1010);
        assert_eq!(mem.tcp_mem_bytes, 260 * 4096);
        assert!(mem.slab.is_empty());
    }

    #[test]
    fn odd_sockstat_is_none() {
        assert_eq!(parse_sockstat("", 4096), None);
        assert_eq!(parse_sockstat("UDP: inuse 3 mem 1\n", 4096), None);
        assert_eq!(parse_sockstat("TCP: inuse many\n", 4096), None);
        assert_eq!(parse_sockstat("TCP: orphan 1\n", 4096), None);
        // Unknown keys are ignored, a trailing key without a value too.
        let mem = parse_sockstat("TCP: inuse 5 future 9 mem", 4096).expect("parses");
        assert_eq!((mem.tcp_inuse, mem.tcp_mem_bytes), (5, 0));
    }

    const SLABINFO: &str = "slabinfo - version: 2.1\n\
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n\
TCPv6                 26     26   2496   13    8 : tunables    0    0    0 : slabdata      2      2      0\n\
tw_sock_TCP          224    224    256   16    1 : tunables    0    0    0 : slabdata     14     14      0\n\
TCP                  104    156   2368   13    8 : tunables    0    0    0 : slabdata     12     12      0\n\
kmalloc-256         4000   4096    256   16    1 : tunables    0    0    0 : slabdata    256    256      0\n\
filp                 473    588    192   21    1 : tunables    0    0    0 : slabdata     28     28      0\n\
dentry               bad    588    192   21    1 : tunables    0    0    0 : slabdata     28     28      0\n\
eventpoll_epi        352\n";

    #[test]
    fn slabinfo_keeps_the_tcp_caches_in_list_order() {
        let lines = parse_slabinfo(SLABINFO, TCP_SLABS);
        let names: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
        // kmalloc-* is not listed; the malformed dentry and eventpoll_epi lines are skipped.
        assert_eq!(names, ["TCP", "TCPv6", "tw_sock_TCP", "filp"]);
        assert_eq!(
            lines[0],
            SlabLine {
                name: "TCP".into(),
                active_objs: 104,
                objsize: 2368,
                bytes: 104 * 2368,
            }
        );
        assert_eq!(parse_slabinfo("", TCP_SLABS), Vec::new());
    }

    #[test]
    fn slab_notes_say_what_is_missing() {
        let mut mem = KernelMem::default();
        add_slab(
            &mut mem,
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "permission denied",
            )),
        );
        assert!(mem.slab.is_empty());
        let note = mem.slab_note.clone().expect("a note");
        assert!(
            note.contains("unreadable") && note.contains("permission denied"),
            "{note}"
        );

        add_slab(&mut mem, Ok(SLABINFO.to_owned()));
        assert_eq!(mem.slab.len(), 4);
        let note = mem.slab_note.clone().expect("a note");
        let (_, missing) = note.split_once(": ").expect("a list");
        let missing: Vec<&str> = missing.split(", ").collect();
        assert!(missing.contains(&"eventpoll_pwq"), "{note}");
        for present in ["TCP", "TCPv6", "tw_sock_TCP", "filp"] {
            assert!(!missing.contains(&present), "{note}");
        }
        assert_eq!(missing.len(), TCP_SLABS.len() - 4);

        let all: String = TCP_SLABS
            .iter()
            .map(|n| format!("{n} 1 1 64 64 1 : tunables 0 0 0 : slabdata 1 1 0\n"))
            .collect();
        add_slab(&mut mem, Ok(all));
        assert_eq!(mem.slab.len(), TCP_SLABS.len());
        assert_eq!(mem.slab_note, None);
    }

    fn line(name: &str, active_objs: u64, objsize: u64) -> SlabLine {
        SlabLine {
            name: name.into(),
            active_objs,
            objsize,
            bytes: active_objs * objsize,
        }
    }

    #[test]
    fn delta_is_the_growth() {
        let before = KernelMem {
            tcp_inuse: 10,
            tcp_orphan: 3,
            tcp_tw: 50,
            tcp_alloc: 12,
            tcp_mem_bytes: 4096,
            slab: vec![line("TCP", 100, 2368), line("filp", 500, 192)],
            slab_note: None,
        };
        let after = KernelMem {
            tcp_inuse: 1010,
            tcp_orphan: 1,
            tcp_tw: 50,
            tcp_alloc: 1012,
            tcp_mem_bytes: 3 * 4096,
            slab: vec![
                line("TCP", 1100, 2368),
                line("filp", 1400, 192),
                line("eventpoll_epi", 1000, 128),
            ],
            slab_note: Some("note".into()),
        };
        let d = after.delta(&before);
        assert_eq!(d.tcp_inuse, 1000);
        assert_eq!(d.tcp_orphan, 0, "a count that fell reads 0");
        assert_eq!(d.tcp_tw, 0);
        assert_eq!(d.tcp_alloc, 1000);
        assert_eq!(d.tcp_mem_bytes, 2 * 4096);
        assert_eq!(
            d.slab,
            [
                line("TCP", 1000, 2368),
                line("filp", 900, 192),
                line("eventpoll_epi", 1000, 128)
            ]
        );
        assert_eq!(d.slab_note.as_deref(), Some("note"));
        assert_eq!(
            d.bytes_total(),
            2 * 4096 + 1000 * 2368 + 900 * 192 + 1000 * 128
        );
        assert_eq!(KernelMem::default().bytes_total(), 0);
    }

    #[test]
    fn live_probes_on_this_process() {
        let pid = std::process::id();
        let cpu_before = process_cpu(pid).expect("own /proc/PID/stat");
        let own_before = own_cpu();
        let threads_total = || own_threads_cpu().iter().map(|t| t.1).sum::<Duration>();
        let threads_before = threads_total();
        // Busy work bounded in count, until every probe has seen it: the whole-process figure
        // includes the running thread's time to the nanosecond, a thread's own line only whole
        // ticks, so the second may lag the first by a tick.
        let mut acc = 0u64;
        let mut grew = (false, false, false);
        for _ in 0..20_000 {
            for i in 0..100_000u64 {
                acc = std::hint::black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(i));
            }
            grew = (
                process_cpu(pid).expect("own /proc/PID/stat") > cpu_before,
                own_cpu() > own_before,
                threads_total() > threads_before,
            );
            if grew == (true, true, true) {
                break;
            }
        }
        std::hint::black_box(acc);
        assert_eq!(
            grew,
            (true, true, true),
            "(process_cpu, own_cpu, own_threads_cpu) grew"
        );
        assert!(process_rss(pid).expect("own /proc/PID/status") > 0);

        let threads = own_threads_cpu();
        assert!(!threads.is_empty(), "no threads in /proc/self/task");
        assert!(threads.iter().all(|t| !t.0.is_empty()), "{threads:?}");
        assert_eq!(
            process_threads_cpu(pid).expect("own task dir").len(),
            threads.len()
        );
    }

    #[test]
    fn live_kernel_mem_and_limits() {
        let mem = kernel_mem().expect("/proc/net/sockstat");
        // The TCP cache is never merged (it is SLAB_TYPESAFE_BY_RCU): when slabinfo is
        // readable it is there.
        if fs::read_to_string("/proc/slabinfo").is_ok() {
            assert!(
                mem.slab.iter().any(|l| l.name == "TCP" && l.objsize > 0),
                "{mem:?}"
            );
        } else {
            assert!(mem.slab.is_empty());
            assert!(mem.slab_note.is_some());
        }
        let (soft, hard) = nofile_limit();
        assert!(soft > 0 && soft <= hard, "({soft}, {hard})");
        let raised = raise_nofile();
        assert!(raised >= soft);
        assert_eq!(nofile_limit(), (raised, hard));
        // Further only where the process may lift the hard limit; never lower.
        let further = raise_nofile_to(u64::MAX);
        assert!(further >= raised);
        assert_eq!(nofile_limit().0, further);
        assert!(further <= nr_open().max(raised));
        assert_eq!(raise_nofile_to(1), further, "a smaller wish lowers nothing");
    }
}
