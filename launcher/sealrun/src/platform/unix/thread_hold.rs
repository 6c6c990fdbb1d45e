//! Holding a thread where it is (POSIX): a signal whose handler waits in
//! `sigsuspend` until told to go on. Compiled code needs no checks for
//! this, so a watched run is exactly as fast as any other; and the thread is
//! held wherever it is, also inside a long host call.
use std::sync::atomic::{AtomicBool, Ordering};

/// Holds the guest thread. SIGUSR1/SIGUSR2 are free: wasmtime uses the
/// fault signals, `signal-hook` SIGINT and SIGTERM.
const HOLD: libc::c_int = libc::SIGUSR1;
/// Lets it go.
const RELEASE: libc::c_int = libc::SIGUSR2;
static HELD: AtomicBool = AtomicBool::new(false);
/// Set by the guest thread once it waits in the handler.
static PARKED: AtomicBool = AtomicBool::new(false);
/// How long `hold` waits for the guest thread to stop: a thread inside a
/// blocking system call takes the signal when the call is interrupted,
/// well within this.
const PARK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

extern "C" fn on_hold(_: libc::c_int) {
    // RELEASE is blocked while this handler runs (its sa_mask), so a
    // release sent between the check and the wait stays pending and
    // ends the wait: no wake-up is lost.
    #[allow(unsafe_code)]
    // SAFETY: sigfillset, sigdelset and sigsuspend are async-signal-safe
    // and only touch the local set.
    unsafe {
        let mut wait: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut wait);
        libc::sigdelset(&mut wait, RELEASE);
        PARKED.store(true, Ordering::SeqCst);
        while HELD.load(Ordering::SeqCst) {
            libc::sigsuspend(&wait);
        }
        PARKED.store(false, Ordering::SeqCst);
    }
}

extern "C" fn on_release(_: libc::c_int) {}

/// The thread to hold.
#[derive(Clone, Copy)]
pub(crate) struct Thread(libc::pthread_t);

#[allow(unsafe_code)]
pub(crate) fn install() -> std::io::Result<Thread> {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        // SAFETY: the handlers are async-signal-safe (see on_hold); the
        // sigaction structs are initialised before use.
        unsafe {
            let mut release: libc::sigaction = std::mem::zeroed();
            release.sa_sigaction = on_release as *const () as usize;
            release.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut release.sa_mask);
            let mut hold: libc::sigaction = std::mem::zeroed();
            hold.sa_sigaction = on_hold as *const () as usize;
            hold.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut hold.sa_mask);
            libc::sigaddset(&mut hold.sa_mask, RELEASE);
            if libc::sigaction(RELEASE, &release, std::ptr::null_mut()) != 0
                || libc::sigaction(HOLD, &hold, std::ptr::null_mut()) != 0
            {
                result = Err(std::io::Error::last_os_error());
            }
        }
    });
    result?;
    // SAFETY: pthread_self has no preconditions.
    Ok(Thread(unsafe { libc::pthread_self() }))
}

#[allow(unsafe_code)]
pub(crate) fn hold(t: Thread) {
    HELD.store(true, Ordering::SeqCst);
    // SAFETY: the thread is alive: the watcher that calls this is joined
    // before the guest thread leaves the run.
    unsafe { libc::pthread_kill(t.0, HOLD) };
    // The signal arrives asynchronously: wait until the guest has
    // stopped, so "paused" is true when it is said (and, for a floating
    // seat, before its deadline).
    let since = std::time::Instant::now();
    while !PARKED.load(Ordering::SeqCst) && since.elapsed() < PARK_WAIT {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[allow(unsafe_code)]
pub(crate) fn release(t: Thread) {
    HELD.store(false, Ordering::SeqCst);
    // SAFETY: as for hold.
    unsafe { libc::pthread_kill(t.0, RELEASE) };
}
