//! Asking for a secret (a token PIN) on the controlling terminal.
use std::io::Write;

use rustix::termios::{LocalModes, OptionalActions, Termios, tcgetattr, tcsetattr};

/// The terminal the secret prompt uses and its settings before echo was
/// turned off, for the Ctrl-C handler to put back.
static PROMPT_TTY: std::sync::OnceLock<(std::fs::File, Termios)> = std::sync::OnceLock::new();

/// Ctrl-C at the secret prompt: put the terminal's echo back, then end as
/// an interrupted launch does (130). Only async-signal-safe calls: rustix's
/// tcsetattr is one ioctl and allocates nothing.
extern "C" fn prompt_interrupted(_: libc::c_int) {
    if let Some((tty, saved)) = PROMPT_TTY.get() {
        let _ = tcsetattr(tty, OptionalActions::Now, saved);
    }
    #[allow(unsafe_code)]
    // SAFETY: _exit is async-signal-safe and ends the process at once.
    unsafe {
        libc::_exit(130)
    }
}

/// Longest secret read at the prompt (longer input is cut, and then
/// refused by the caller's own length check).
const MAX_SECRET_LEN: usize = 1024;

/// Asks for a secret on the controlling terminal with echo off, as `sudo`
/// does. `None` when there is no terminal (a file-manager launch, a pipe) or
/// nothing was typed; the caller then says where else the secret may come
/// from. The typed bytes go into one wiped buffer, never a reader's.
#[allow(unsafe_code)]
pub fn prompt_secret(prompt: &str) -> Option<zeroize::Zeroizing<String>> {
    use std::io::Read;
    let (tty, saved) = match PROMPT_TTY.get() {
        Some(t) => t,
        None => {
            let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").ok()?;
            // Fails for anything that is not a terminal.
            let saved = tcgetattr(&tty).ok()?;
            let _ = PROMPT_TTY.set((tty, saved));
            PROMPT_TTY.get()?
        }
    };
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    // rustix has no sigaction (outside its runtime feature), so libc's.
    // SAFETY: the handler is async-signal-safe; `previous` is restored below.
    let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
    unsafe {
        let mut on_int: libc::sigaction = std::mem::zeroed();
        on_int.sa_sigaction = prompt_interrupted as *const () as usize;
        libc::sigemptyset(&mut on_int.sa_mask);
        libc::sigaction(libc::SIGINT, &on_int, &mut previous);
    }
    let _ = tcsetattr(tty, OptionalActions::Now, &quiet);
    let mut out = tty;
    let _ = out.write_all(prompt.as_bytes()).and_then(|()| out.flush());
    let mut secret = zeroize::Zeroizing::new(Vec::with_capacity(MAX_SECRET_LEN));
    let mut byte = zeroize::Zeroizing::new([0u8; 1]);
    let mut reader = tty;
    let ok = loop {
        match reader.read(&mut byte[..]) {
            Ok(0) => break true,
            Ok(_) if byte[0] == b'\n' => break true,
            Ok(_) if secret.len() < MAX_SECRET_LEN => secret.push(byte[0]),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break false,
        }
    };
    let _ = tcsetattr(tty, OptionalActions::Now, saved);
    // SAFETY: puts back the handler saved above.
    unsafe {
        libc::sigaction(libc::SIGINT, &previous, std::ptr::null_mut());
    }
    if !ok {
        return None;
    }
    let text = std::str::from_utf8(&secret).ok()?.trim_end_matches('\r');
    (!text.is_empty()).then(|| zeroize::Zeroizing::new(text.to_owned()))
}
