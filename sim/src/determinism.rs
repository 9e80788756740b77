//! Determinism of code tandem did not write: third-party code in a node
//! (`rand::thread_rng()`, `rand::rng()`, `getrandom`, `Instant::now()`,
//! `SystemTime::now()`, std's `HashMap` keys) becomes a function of the run's
//! seed and simulated time, without changes to it.
//!
//! As madsim does, the binary defines C functions with glibc's names
//! (`getrandom`, `getentropy`, `clock_gettime`, `gettimeofday`, and `syscall`
//! for `SYS_getrandom`, which getrandom 0.2 and so rand 0.8 issue
//! themselves). A definition in the executable wins at link time over
//! libc's, so every call from Rust or C code linked into the binary lands
//! here. While a simulation runs on the *calling thread* (see [`enter`]) the
//! answers come from the run: randomness from a stream seeded by the run's
//! seed, `CLOCK_MONOTONIC` (and `_RAW`, `_COARSE`, `BOOTTIME`) reads
//! [`MONOTONIC_BASE`] plus the simulated time, `CLOCK_REALTIME` (and
//! `_COARSE`, `TAI`) and `gettimeofday` read [`REALTIME_BASE`] plus the
//! simulated time. On every other thread, and outside a simulation, each
//! call goes to the real libc function: the real backend and MsQuic's own
//! threads are untouched. Each simulated run happens on a fresh thread
//! ([`run_with`](crate::run_with) sees to it), because std's `HashMap` keys
//! and rand's `ThreadRng` are seeded once per thread.
//!
//! While the events backend drives a node's runtime ([`run_ready`]), the
//! clocks read that node's ([`tandem::engine::clock::NodeClock`]): each node a unit
//! of execution with clocks of its own. `syscall` also catches the driven
//! runtime's park (a futex wait between its park hooks) and returns at
//! once with its deadline recorded: the scheduler learns the runtime's next
//! timer without anything sleeping. Outside a simulation, on a real node's
//! thread whose clock is set ([`tandem::engine::clock::set_thread_clock`]), the
//! real clocks are read through that node's clock.
//!
//! `getpid` answers [`SIMULATED_PID`]. `pthread_create` records every OS
//! thread started inside a simulation (`std::thread::spawn`,
//! `spawn_blocking`, so `tokio::fs`) with the call and the [running
//! node](tandem::engine::host::running_node): such a thread runs outside simulated
//! time and the run's seed. The backend ends the run at once with an
//! [`OS_THREAD`] failure that names both, whoever caught what the thread
//! did. The thread itself still starts: refusing it would leave tokio's
//! paused clock waiting for a blocking task that never runs. With threads
//! allowed ([`allow_threads`], `TANDEM_ALLOW_THREADS=1`) the run goes on
//! and records that it is not reproducible.
//!
//! Not covered (a two-run `--check-determinism` exposes these, with the
//! first differing event): CPU-time clocks (`CLOCK_*_CPUTIME_ID`, passed
//! through); code that bypasses libc (inline-assembly system calls such as
//! rustix's `linux_raw` backend or getrandom's `linux_raw` backend, reads of
//! `/dev/urandom`, `RDRAND`, `RDTSC`-based clocks like `quanta`, the vDSO
//! called directly); glibc functions that read the clock internally
//! (`time()`, `arc4random`, timed condition waits); the threads of a run
//! that allows them; and what varies with the process besides its id (heap
//! addresses, thread ids). A `std::time::Instant` taken inside
//! a simulation is on the simulated timeline and must not be compared with
//! a real one. Only x86-64 Linux with glibc is covered; elsewhere
//! [`available`] is false and nothing is interposed.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::task::{Poll, Waker};
use std::time::Duration;

use tandem::property::Violation;
use tandem::scenario::NodeIdx;

/// What `CLOCK_MONOTONIC` reads at elapsed zero (a day, so `Instant - d` never underflows).
pub const MONOTONIC_BASE: Duration = Duration::from_secs(86_400);
/// What `CLOCK_REALTIME` reads at elapsed zero: 2024-01-01T00:00:00Z.
pub const REALTIME_BASE: Duration = Duration::from_secs(1_704_067_200);

thread_local! {
    // Const-initialised and without Drop: no lazy init or destructor registration, so
    // they are safe to touch from inside the interposed libc functions.
    /// xoshiro256** state; `Some` exactly while a simulation is active on this thread.
    static RNG: Cell<Option<[u64; 4]>> = const { Cell::new(None) };
    static ELAPSED: Cell<Duration> = const { Cell::new(Duration::ZERO) };
    static THREADS_ALLOWED: Cell<bool> = const { Cell::new(false) };
    static THREAD_STARTS: RefCell<Vec<ThreadStart>> = const { RefCell::new(Vec::new()) };
    /// Woken when a thread is started that the run does not allow.
    static ON_REFUSAL: RefCell<Option<Waker>> = const { RefCell::new(None) };
    /// The node whose runtime [`run_ready`] drives, and what its clocks
    /// read: the monotonic clock (as time since the run began) and the wall
    /// clock's shift from true time, in nanoseconds.
    static DRIVEN: Cell<Option<(NodeIdx, Duration, i128)>> = const { Cell::new(None) };
    /// Whether [`run_ready`] drives a runtime: its park is intercepted.
    static DRIVING: Cell<bool> = const { Cell::new(false) };
    /// Whether the driven runtime is parking (between its park hooks).
    static PARKING: Cell<bool> = const { Cell::new(false) };
    /// The driven runtime asked to park: until what monotonic reading (as
    /// time since the run began), or with no timeout.
    static PARKED: Cell<Option<Option<Duration>>> = const { Cell::new(None) };
    /// Woken when the driven runtime asks to park.
    static ON_PARK: RefCell<Option<Waker>> = const { RefCell::new(None) };
}

/// A node's clock readings at one moment, for [`run_ready`]: its monotonic
/// clock (as time since the run began) and its wall clock's shift from
/// true time, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// The node.
    pub node: NodeIdx,
    /// What its monotonic clock reads, as time since the run began.
    pub monotonic: Duration,
    /// How far its wall clock is ahead of true time, in nanoseconds.
    pub wall_shift: i128,
}

/// The node whose runtime is being driven on this thread, if any.
pub fn driven_node() -> Option<NodeIdx> {
    DRIVEN.get().map(|(node, ..)| node)
}

/// Runs everything `runtime` has ready at the current simulated time, with
/// the clocks of `reading`'s node (true time for `None`), polling `main`
/// whenever it is woken: returns `Ok` with `main`'s output once it is ready,
/// or `Err` with the runtime's next timer once it has nothing left to run
/// (as a monotonic reading, time since the run began; `None`: no timer).
///
/// The runtime must come from [`drivable_runtime`]: when it parks, the
/// interposed futex wait records its deadline and returns at once, so
/// nothing advances but this record.
pub fn run_ready<T>(
    runtime: &tokio::runtime::Runtime,
    reading: Option<Reading>,
    mut main: impl FnMut(&mut std::task::Context<'_>) -> Poll<T>,
) -> Result<T, Option<Duration>> {
    assert!(available(), "node units need the interposed libc of x86-64 Linux with glibc");
    assert!(!DRIVING.get(), "run_ready is not reentrant");
    DRIVEN.set(reading.map(|r| (r.node, r.monotonic, r.wall_shift)));
    DRIVING.set(true);
    PARKED.set(None);
    let ran = runtime.block_on(std::future::poll_fn(|cx| {
        if let Poll::Ready(done) = main(cx) {
            return Poll::Ready(Ok(done));
        }
        match PARKED.take() {
            Some(deadline) => Poll::Ready(Err(deadline)),
            None => {
                ON_PARK.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }));
    DRIVING.set(false);
    DRIVEN.set(None);
    ran
}

/// A runtime [`run_ready`] can drive: current-thread, with an unpaused
/// clock and no I/O driver, whose park hooks tell the interposer that a
/// futex wait is its park (and not, say, a `join` in a task).
pub fn drivable_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .on_thread_park(|| PARKING.set(true))
        .on_thread_unpark(|| PARKING.set(false))
        .build()
        .expect("a current-thread runtime builds")
}

/// Runs `f` with the clocks of `reading`'s node (a runtime built in it
/// counts its time from the node's clock).
pub fn with_reading<T>(reading: Reading, f: impl FnOnce() -> T) -> T {
    let previous = DRIVEN.replace(Some((reading.node, reading.monotonic, reading.wall_shift)));
    let out = f();
    DRIVEN.set(previous);
    out
}

/// The driven runtime parks until the monotonic reading `deadline` (since
/// the run began), or with no timeout: record it and wake [`run_ready`].
/// Returns whether the park was intercepted.
fn parking(deadline: Option<Duration>) -> bool {
    if !DRIVING.get() || !PARKING.get() {
        return false;
    }
    PARKED.set(Some(deadline));
    match ON_PARK.take() {
        Some(waker) => waker.wake(),
        None => {
            let message = b"tandem: a driven runtime parked with no driver waiting\n";
            // SAFETY: writing a static buffer to stderr.
            unsafe { libc::write(2, message.as_ptr().cast(), message.len()) };
            std::process::abort();
        }
    }
    true
}

/// What `getpid` answers inside a simulation.
pub const SIMULATED_PID: i32 = 4242;

/// The failure code of a run whose node started an OS thread.
pub const OS_THREAD: &str = "os-thread";

/// An OS thread that code in a simulation started, or tried to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadStart {
    /// The node whose code the framework was polling, if known (see
    /// [`tandem::engine::host::running_node`]).
    pub node: Option<NodeIdx>,
    /// The call that started it, from the stack: `tokio::fs::...`,
    /// `tokio::task::spawn_blocking` or `std::thread::spawn`, and its caller.
    pub call: String,
    /// Whether the run allows it ([`allow_threads`]).
    pub allowed: bool,
}

impl ThreadStart {
    fn who(&self) -> String {
        match self.node {
            Some(node) => format!("node {node}"),
            None => "a task a node spawned".into(),
        }
    }

    /// The failure of a run that refused it, at `at`.
    pub fn failure(&self, at: Duration) -> Violation {
        let detail = format!(
            "{} started an OS thread ({}): a thread runs outside simulated time and the run's seed, so no seed \
             could replay this run. Use `NodeContext::storage` for files and tasks (`tokio::spawn`) for \
             concurrency; or set TANDEM_ALLOW_THREADS=1 to run it anyway, unreproducibly",
            self.who(),
            self.call
        );
        let mut failure = Violation::new(OS_THREAD, "no OS threads in a simulation", detail, at);
        failure.node = self.node;
        failure
    }
}

/// Whether simulations started on this thread from now on let node code
/// start OS threads: by default `TANDEM_ALLOW_THREADS=1` (read once).
pub fn threads_allowed_by_default() -> bool {
    static ALLOWED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ALLOWED.get_or_init(|| std::env::var("TANDEM_ALLOW_THREADS").is_ok_and(|v| v == "1"))
}

/// Lets (or stops letting) code in the simulation on this thread start OS
/// threads without failing the run; each start is recorded
/// ([`take_thread_starts`]).
pub fn allow_threads(allowed: bool) {
    THREADS_ALLOWED.set(allowed);
}

/// The OS threads started (or refused) on this thread since the last call.
pub fn take_thread_starts() -> Vec<ThreadStart> {
    THREAD_STARTS.take()
}

/// Ends the run with an [`OS_THREAD`] failure if node code on this thread
/// started a thread the run does not allow since the last call; records
/// each allowed one as making the run unreproducible. For backends, after every
/// stretch of simulation, which ended at `now`.
pub fn judge_thread_starts<S: tandem::system::System>(recorder: &tandem::engine::recorder::Recorder<S>, now: Duration) {
    for start in take_thread_starts() {
        if !start.allowed {
            std::panic::resume_unwind(Box::new(start.failure(now)));
        }
        recorder.push_at(now, start.node, tandem::history::EventKind::ThreadStarted { call: start.call });
    }
}

/// Completes once code on this thread has started an OS thread the run
/// does not allow: for a backend's runner to stop at once.
pub async fn refused_thread() {
    std::future::poll_fn(|cx| {
        if THREAD_STARTS.with_borrow(|starts| starts.iter().any(|start| !start.allowed)) {
            return Poll::Ready(());
        }
        ON_REFUSAL.set(Some(cx.waker().clone()));
        Poll::Pending
    })
    .await
}

/// Records a thread starting on this thread.
fn thread_starting() {
    let allowed = THREADS_ALLOWED.get();
    let node = tandem::engine::host::running_node().or_else(driven_node);
    let start = ThreadStart { node, call: spawning_call(), allowed };
    THREAD_STARTS.with_borrow_mut(|starts| starts.push(start));
    if !allowed {
        if let Some(waker) = ON_REFUSAL.take() {
            waker.wake();
        }
    }
}

/// `module::f::f` as `module::f` (an async fn named like its module).
fn collapse(frame: &str) -> String {
    match frame.rsplit_once("::") {
        Some((module, name)) if module.ends_with(&format!("::{name}")) => module.to_string(),
        _ => frame.to_string(),
    }
}

/// The call that is starting a thread, read from the stack: the most
/// specific frame that starts threads, and the first frame of the caller's
/// own code below it.
fn spawning_call() -> String {
    let stack = std::backtrace::Backtrace::force_capture().to_string();
    let frames: Vec<&str> = stack
        .lines()
        .filter_map(|line| line.trim().split_once(": ").map(|(_, name)| name))
        .map(|name| name.trim_end_matches("::{{closure}}"))
        .collect();
    let find = |part: &str| frames.iter().find(|f| f.contains(part)).map(|f| collapse(f));
    let call = find("tokio::fs::")
        .map(|f| format!("{f}, through spawn_blocking"))
        .or_else(|| find("spawn_blocking").map(|_| "tokio::task::spawn_blocking".to_string()))
        .unwrap_or_else(|| "std::thread::spawn".to_string());
    // The first frame of code that is neither the language's, tokio's,
    // tracing's nor tandem's: the node's (absent when inlined away).
    let framework = ["std::", "core::", "alloc::", "tokio::", "tracing::", "tandem::", "tandem_sim::"];
    let caller = frames.iter().find(|f| {
        let path = f.trim_start_matches('<');
        !framework.iter().any(|p| path.starts_with(p))
            && !path.starts_with("__")
            && !path.contains("pthread")
            && path != "unknown>"
    });
    match caller {
        Some(caller) => format!("{call}, called from `{caller}`"),
        None => call,
    }
}

/// Active simulation context on the current thread; dropping it restores the previous one.
#[must_use = "the simulation context is left when the guard is dropped"]
pub struct Guard {
    prev: (Option<[u64; 4]>, Duration),
    _not_send: PhantomData<*const ()>,
}

/// Activates a simulation seeded with `seed` on the current thread, elapsed time zero.
pub fn enter(seed: u64) -> Guard {
    std::hint::black_box(available());
    let mut sm = seed;
    let state = std::array::from_fn(|_| splitmix64(&mut sm));
    let prev = (RNG.replace(Some(state)), ELAPSED.replace(Duration::ZERO));
    Guard { prev, _not_send: PhantomData }
}

impl Drop for Guard {
    fn drop(&mut self) {
        RNG.set(self.prev.0);
        ELAPSED.set(self.prev.1);
    }
}

/// Sets the simulated time elapsed since [`enter`] on the current thread.
pub fn set_elapsed(d: Duration) {
    ELAPSED.set(d);
}

/// The simulated time elapsed since [`enter`] on the current thread, as
/// the running backend last set it.
pub fn elapsed() -> Duration {
    ELAPSED.get()
}

/// Whether a simulation is active on the current thread.
pub fn active() -> bool {
    RNG.get().is_some()
}

/// Whether the overrides are compiled in (x86-64 Linux with glibc). Taking
/// their addresses keeps the object file that defines them in the link.
pub fn available() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]
    {
        std::hint::black_box([
            sys::getrandom as *const (),
            sys::getentropy as *const (),
            sys::clock_gettime as *const (),
            sys::gettimeofday as *const (),
            sys::syscall as *const (),
            sys::getpid as *const (),
            sys::epoll_wait as *const (),
            sys::pthread_create as *const (),
        ]);
        true
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64")))]
    false
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `buf` from the simulation's PRNG; `false` (untouched) if none is active.
fn sim_fill(buf: &mut [u8]) -> bool {
    let Some(mut s) = RNG.get() else { return false };
    for chunk in buf.chunks_mut(8) {
        // xoshiro256**
        let out = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        chunk.copy_from_slice(&out.to_le_bytes()[..chunk.len()]);
    }
    RNG.set(Some(s));
    true
}

#[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]
mod sys {
    use super::{
        parking, sim_fill, thread_starting, DRIVEN, ELAPSED, MONOTONIC_BASE, REALTIME_BASE, RNG, SIMULATED_PID,
    };
    use libc::{
        c_int, c_long, c_uint, c_void, clockid_t, pid_t, pthread_attr_t, pthread_t, size_t, ssize_t, timespec, timeval,
    };
    use std::cell::Cell;
    use std::ffi::CStr;
    use std::ptr;
    use std::sync::atomic::{AtomicPtr, Ordering};
    use std::time::Duration;

    thread_local! {
        static IN_DLSYM: Cell<bool> = const { Cell::new(false) };
    }

    /// The next definition of `name` after this binary (libc's), resolved once and cached.
    /// `None` if absent, or if called re-entrantly from inside `dlsym` itself.
    fn resolve<F: Copy>(cache: &AtomicPtr<c_void>, name: &CStr) -> Option<F> {
        let mut p = cache.load(Ordering::Acquire);
        if p.is_null() {
            if IN_DLSYM.replace(true) {
                return None;
            }
            // SAFETY: `name` is NUL-terminated; RTLD_NEXT is valid from an executable.
            p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
            IN_DLSYM.set(false);
            if p.is_null() {
                return None;
            }
            cache.store(p, Ordering::Release);
        }
        // SAFETY: F is the function-pointer type of the C function named `name`.
        Some(unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) })
    }

    macro_rules! real {
        ($name:literal, $ty:ty) => {{
            static CACHE: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());
            resolve::<$ty>(&CACHE, $name)
        }};
    }

    /// A system call without libc, with glibc's `syscall()` return/errno convention.
    /// Forwards `syscall()` and stands in when a real function cannot be resolved; never recurses.
    unsafe fn raw(n: c_long, a: [c_long; 6]) -> c_long {
        let ret: c_long;
        // SAFETY: Linux x86_64 syscall ABI; the kernel clobbers only rcx and r11.
        unsafe {
            std::arch::asm!("syscall", inlateout("rax") n => ret,
                in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
                in("r10") a[3], in("r8") a[4], in("r9") a[5],
                lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        if (-4095..0).contains(&ret) {
            // SAFETY: __errno_location returns this thread's errno slot.
            unsafe { *libc::__errno_location() = -ret as c_int };
            return -1;
        }
        ret
    }

    /// Simulated reading of `clock`, or `None` to use the real clock: no simulation is
    /// active, or the clock is a CPU-time clock (`CLOCK_*_CPUTIME_ID`, per-process or
    /// per-thread `clockid_t`s) or another id not listed here (e.g. `*_ALARM`).
    /// The driven node's clocks ([`super::run_ready`]) when one is driven.
    fn sim_clock(clock: clockid_t) -> Option<Duration> {
        RNG.get()?;
        let now = ELAPSED.get();
        let (monotonic, wall_shift) = DRIVEN.get().map_or((now, 0), |(_, monotonic, shift)| (monotonic, shift));
        match kind(clock)? {
            Kind::Monotonic => Some(MONOTONIC_BASE + monotonic),
            Kind::Wall => Some(shifted(REALTIME_BASE + now, wall_shift)),
        }
    }

    enum Kind {
        Monotonic,
        Wall,
    }

    fn kind(clock: clockid_t) -> Option<Kind> {
        match clock {
            libc::CLOCK_MONOTONIC | libc::CLOCK_MONOTONIC_RAW | libc::CLOCK_MONOTONIC_COARSE | libc::CLOCK_BOOTTIME => {
                Some(Kind::Monotonic)
            }
            libc::CLOCK_REALTIME | libc::CLOCK_REALTIME_COARSE | libc::CLOCK_TAI => Some(Kind::Wall),
            _ => None,
        }
    }

    fn shifted(time: Duration, shift: i128) -> Duration {
        let nanos = (time.as_nanos() as i128 + shift).max(0);
        Duration::new((nanos / 1_000_000_000) as u64, (nanos % 1_000_000_000) as u32)
    }

    fn to_duration(ts: &timespec) -> Duration {
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    fn to_timespec(d: Duration) -> timespec {
        timespec { tv_sec: d.as_secs() as _, tv_nsec: d.subsec_nanos() as _ }
    }

    /// Outside a simulation, on the thread of a real node whose clock is
    /// set ([`tandem::engine::clock::thread_clock`]): `real`, the real reading of
    /// `clock`, as the node's clock reads it.
    fn node_clock(clock: clockid_t, real: Duration, read: impl Fn(clockid_t) -> Option<Duration>) -> Duration {
        let Some(node) = tandem::engine::clock::thread_clock() else { return real };
        match kind(clock) {
            Some(Kind::Monotonic) => {
                let now = real.saturating_sub(node.began);
                node.began + node.clock.monotonic(now)
            }
            Some(Kind::Wall) => match read(libc::CLOCK_MONOTONIC) {
                Some(monotonic) => shifted(real, node.clock.wall_shift(monotonic.saturating_sub(node.began))),
                None => real,
            },
            None => real,
        }
    }

    #[no_mangle]
    pub unsafe extern "C" fn getrandom(buf: *mut c_void, len: size_t, flags: c_uint) -> ssize_t {
        // SAFETY: the caller guarantees `buf` is valid for `len` writable bytes.
        if len == 0 || sim_fill(unsafe { std::slice::from_raw_parts_mut(buf.cast(), len) }) {
            return len as ssize_t;
        }
        type F = unsafe extern "C" fn(*mut c_void, size_t, c_uint) -> ssize_t;
        match real!(c"getrandom", F) {
            // SAFETY: forwarding the caller's arguments unchanged to libc.
            Some(f) => unsafe { f(buf, len, flags) },
            // SAFETY: same arguments, straight to the kernel.
            None => unsafe { raw(libc::SYS_getrandom, [buf as _, len as _, flags as _, 0, 0, 0]) as ssize_t },
        }
    }

    #[no_mangle]
    pub unsafe extern "C" fn getentropy(buf: *mut c_void, len: size_t) -> c_int {
        if len > 256 {
            // SAFETY: __errno_location returns this thread's errno slot.
            unsafe { *libc::__errno_location() = libc::EIO };
            return -1;
        }
        // SAFETY: the caller guarantees `buf` is valid for `len` writable bytes.
        if len == 0 || sim_fill(unsafe { std::slice::from_raw_parts_mut(buf.cast(), len) }) {
            return 0;
        }
        type F = unsafe extern "C" fn(*mut c_void, size_t) -> c_int;
        match real!(c"getentropy", F) {
            // SAFETY: forwarding the caller's arguments unchanged to libc.
            Some(f) => unsafe { f(buf, len) },
            // SAFETY: as above; at most 256 bytes, which getrandom(2) never splits.
            None => match unsafe { raw(libc::SYS_getrandom, [buf as _, len as _, 0, 0, 0, 0]) } {
                -1 => -1,
                _ => 0,
            },
        }
    }

    #[no_mangle]
    pub unsafe extern "C" fn clock_gettime(clock: clockid_t, tp: *mut timespec) -> c_int {
        if let Some(d) = sim_clock(clock) {
            // SAFETY: the caller passes a valid `timespec` to fill.
            unsafe { *tp = to_timespec(d) };
            return 0;
        }
        // SAFETY: forwarding the caller's arguments unchanged.
        let result = unsafe { real_clock_gettime(clock, tp) };
        if result == 0 && tandem::engine::clock::thread_clock().is_some() {
            let read = |clock| {
                let mut ts = timespec { tv_sec: 0, tv_nsec: 0 };
                // SAFETY: a valid `timespec` to fill.
                (unsafe { real_clock_gettime(clock, &mut ts) } == 0).then(|| to_duration(&ts))
            };
            // SAFETY: the call succeeded, so `tp` is a valid, filled `timespec`.
            unsafe { *tp = to_timespec(node_clock(clock, to_duration(&*tp), read)) };
        }
        result
    }

    /// libc's `clock_gettime`.
    unsafe fn real_clock_gettime(clock: clockid_t, tp: *mut timespec) -> c_int {
        type F = unsafe extern "C" fn(clockid_t, *mut timespec) -> c_int;
        match real!(c"clock_gettime", F) {
            // SAFETY: forwarding the caller's arguments unchanged to libc.
            Some(f) => unsafe { f(clock, tp) },
            // SAFETY: same arguments, straight to the kernel.
            None => unsafe { raw(libc::SYS_clock_gettime, [clock as _, tp as _, 0, 0, 0, 0]) as c_int },
        }
    }

    #[no_mangle]
    pub unsafe extern "C" fn gettimeofday(tv: *mut timeval, tz: *mut c_void) -> c_int {
        let node_wall = || {
            tandem::engine::clock::thread_clock()?;
            let mut ts = timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: a valid `timespec` to fill.
            (unsafe { clock_gettime(libc::CLOCK_REALTIME, &mut ts) } == 0).then(|| to_duration(&ts))
        };
        if let Some(d) = sim_clock(libc::CLOCK_REALTIME).or_else(node_wall) {
            if !tv.is_null() {
                // SAFETY: a non-null `tv` points to a `timeval` to fill.
                unsafe { *tv = timeval { tv_sec: d.as_secs() as _, tv_usec: d.subsec_micros() as _ } };
            }
            if !tz.is_null() {
                // SAFETY: a non-null `tz` points to a `struct timezone` (two ints): UTC.
                unsafe { *tz.cast::<[c_int; 2]>() = [0, 0] };
            }
            return 0;
        }
        type F = unsafe extern "C" fn(*mut timeval, *mut c_void) -> c_int;
        match real!(c"gettimeofday", F) {
            // SAFETY: forwarding the caller's arguments unchanged to libc.
            Some(f) => unsafe { f(tv, tz) },
            // SAFETY: same arguments, straight to the kernel.
            None => unsafe { raw(libc::SYS_gettimeofday, [tv as _, tz as _, 0, 0, 0, 0]) as c_int },
        }
    }

    /// glibc's variadic `syscall(number, ...)`, here for crates that issue
    /// `syscall(SYS_getrandom, ..)` themselves (getrandom 0.2, so rand 0.8's `thread_rng`).
    /// On x86_64 a variadic call passes integer arguments exactly like a fixed
    /// seven-argument one, and extra unread arguments are harmless, so this matches
    /// glibc's own assembly wrapper; every other number goes straight to the kernel.
    #[no_mangle]
    pub unsafe extern "C" fn syscall(
        n: c_long,
        a1: c_long,
        a2: c_long,
        a3: c_long,
        a4: c_long,
        a5: c_long,
        a6: c_long,
    ) -> c_long {
        if n == libc::SYS_getrandom && RNG.get().is_some() {
            // SAFETY: getrandom(2)'s arguments are (buf, len, flags).
            return unsafe { getrandom(a1 as _, a2 as _, a3 as _) } as c_long;
        }
        if n == libc::SYS_futex {
            let op = (a2 as c_int) & !libc::FUTEX_PRIVATE_FLAG;
            if op == libc::FUTEX_WAIT_BITSET || op == libc::FUTEX_WAIT {
                // std's timed wait passes an absolute CLOCK_MONOTONIC deadline (BITSET),
                // tokio's untimed park none; a plain FUTEX_WAIT timeout is relative.
                // SAFETY: a non-null `a4` is the caller's `timespec`.
                let timeout = (a4 != 0).then(|| to_duration(unsafe { &*(a4 as *const timespec) }));
                let deadline = match (op == libc::FUTEX_WAIT_BITSET, timeout) {
                    (true, Some(at)) => Some(at.saturating_sub(MONOTONIC_BASE)),
                    (false, Some(after)) => sim_clock(libc::CLOCK_MONOTONIC).map(|now| now - MONOTONIC_BASE + after),
                    (_, None) => None,
                };
                if parking(deadline) {
                    // SAFETY: __errno_location returns this thread's errno slot.
                    unsafe { *libc::__errno_location() = libc::ETIMEDOUT };
                    return -1;
                }
            }
        }
        // SAFETY: the caller's system call, unchanged.
        unsafe { raw(n, [a1, a2, a3, a4, a5, a6]) }
    }

    /// libc's, with the timeout of a real node whose clock is set
    /// ([`tandem::engine::clock::thread_clock`]) turned from its clock's
    /// milliseconds to real ones: tokio's I/O driver computes how long to
    /// sleep on the node's clock, the kernel counts it in real time.
    #[no_mangle]
    pub unsafe extern "C" fn epoll_wait(
        epfd: c_int,
        events: *mut libc::epoll_event,
        max: c_int,
        timeout: c_int,
    ) -> c_int {
        let timeout = match (tandem::engine::clock::thread_clock(), timeout > 0) {
            (Some(node), true) => {
                let mut ts = timespec { tv_sec: 0, tv_nsec: 0 };
                // SAFETY: a valid `timespec` to fill.
                let now = match unsafe { real_clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } {
                    0 => to_duration(&ts).saturating_sub(node.began),
                    _ => Duration::ZERO,
                };
                let due = node.clock.true_time(node.clock.monotonic(now) + Duration::from_millis(timeout as u64));
                due.saturating_sub(now).as_millis().clamp(1, c_int::MAX as u128) as c_int
            }
            _ => timeout,
        };
        type F = unsafe extern "C" fn(c_int, *mut libc::epoll_event, c_int, c_int) -> c_int;
        match real!(c"epoll_wait", F) {
            // SAFETY: the caller's arguments, the timeout converted.
            Some(f) => unsafe { f(epfd, events, max, timeout) },
            // SAFETY: as above, straight to the kernel (epoll_wait is epoll_pwait without a mask).
            None => unsafe {
                raw(libc::SYS_epoll_pwait, [epfd as _, events as _, max as _, timeout as _, 0, 0]) as c_int
            },
        }
    }

    #[no_mangle]
    pub extern "C" fn getpid() -> pid_t {
        if RNG.get().is_some() {
            return SIMULATED_PID;
        }
        // SAFETY: getpid(2) takes no arguments and cannot fail.
        unsafe { raw(libc::SYS_getpid, [0; 6]) as pid_t }
    }

    /// libc's, recording a thread started inside a simulation.
    #[no_mangle]
    pub unsafe extern "C" fn pthread_create(
        thread: *mut pthread_t,
        attr: *const pthread_attr_t,
        start: extern "C" fn(*mut c_void) -> *mut c_void,
        arg: *mut c_void,
    ) -> c_int {
        if RNG.get().is_some() {
            thread_starting();
        }
        type F = unsafe extern "C" fn(
            *mut pthread_t,
            *const pthread_attr_t,
            extern "C" fn(*mut c_void) -> *mut c_void,
            *mut c_void,
        ) -> c_int;
        match real!(c"pthread_create", F) {
            // SAFETY: forwarding the caller's arguments unchanged to libc.
            Some(f) => unsafe { f(thread, attr, start, arg) },
            None => libc::EAGAIN,
        }
    }
}
