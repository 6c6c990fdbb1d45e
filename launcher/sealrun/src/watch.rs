//! What a run depends on while the guest runs (a dongle, a floating seat),
//! as the runtime sees it: the license side implements [`Watch`], the
//! runtime's watcher checks it, holds the guest while it is lost and ends
//! the run past its grace period. Shared by `license/` and `runtime/`,
//! which do not import each other.
use crate::error::LaunchError;

/// What a watched run depends on, checked every [`Watch::interval`] on a
/// thread of its own while the guest runs.
pub trait Watch: Send {
    /// Time between checks.
    fn interval(&self) -> std::time::Duration;
    /// How long it may be missing before the run is stopped.
    fn grace(&self) -> std::time::Duration;
    /// Whether it holds now.
    fn check(&mut self) -> Result<(), Lost>;
    /// Told to the user when the guest is paused.
    fn paused(&self, why: &str) -> String;
    /// Told to the user when the guest resumes.
    fn resumed(&self) -> String;
    /// Why the run is stopped, when it is missing past the grace period or
    /// can never come back.
    fn give_up(&self, why: &str) -> LaunchError;
}

/// A failed [`Watch::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// Missing now; may come back within the grace period.
    Away(String),
    /// Cannot come back (e.g. replaced by something else): stop now.
    Gone(String),
}

/// One line for the user on stderr, written straight to the file
/// descriptor: a guest held mid-write may own the lock of Rust's `stderr`,
/// and a message about the pause must not wait for that.
pub(crate) fn say(message: &str) {
    let line = format!("sealrun: {}\n", sealrun_format::text::shown_lines(message));
    crate::platform::write_stderr_unlocked(line.as_bytes());
}
