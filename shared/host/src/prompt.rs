//! Asking for a secret (a token PIN) on the controlling terminal.
use std::io::Write;

/// The terminal the secret prompt uses and its settings before echo was
/// turned off, for the Ctrl-C handler to put back.
static PROMPT_TTY: std::sync::OnceLock<(std::fs::File, libc::termios)> = std::sync::OnceLock::new();

/// Ctrl-C at the secret prompt: put the terminal's echo back, then end as
/// an interrupted launch does (130). Only async-signal-safe calls.
extern "C" fn prompt_interrupted(_: libc::c_int) {
    use std::os::fd::AsRawFd;
    #[allow(unsafe_code)]
    // SAFETY: tcsetattr and _exit are async-signal-safe; the OnceLock is
    // set before this handler is installed and never changes after.
    unsafe {
        if let Some((tty, saved)) = PROMPT_TTY.get() {
            libc::tcsetattr(tty.as_raw_fd(), libc::TCSANOW, saved);
        }
        libc::_exit(130);
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
    use std::os::fd::AsRawFd;
    let (tty, saved) = match PROMPT_TTY.get() {
        Some(t) => t,
        None => {
            let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").ok()?;
            // SAFETY: termios is plain data; tcgetattr fills it for a
            // terminal fd and fails (returning -1) for anything else.
            let mut saved: libc::termios = unsafe { std::mem::zeroed() };
            if unsafe { libc::tcgetattr(tty.as_raw_fd(), &mut saved) } != 0 {
                return None;
            }
            let _ = PROMPT_TTY.set((tty, saved));
            PROMPT_TTY.get()?
        }
    };
    let fd = tty.as_raw_fd();
    let mut quiet = *saved;
    quiet.c_lflag &= !libc::ECHO;
    quiet.c_lflag |= libc::ECHONL;
    // SAFETY: the handler is async-signal-safe; `previous` is restored below.
    let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
    unsafe {
        let mut on_int: libc::sigaction = std::mem::zeroed();
        on_int.sa_sigaction = prompt_interrupted as *const () as usize;
        libc::sigemptyset(&mut on_int.sa_mask);
        libc::sigaction(libc::SIGINT, &on_int, &mut previous);
        libc::tcsetattr(fd, libc::TCSANOW, &quiet);
    }
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
    // SAFETY: puts back the settings and the handler saved above.
    unsafe {
        libc::tcsetattr(fd, libc::TCSANOW, saved);
        libc::sigaction(libc::SIGINT, &previous, std::ptr::null_mut());
    }
    if !ok {
        return None;
    }
    let text = std::str::from_utf8(&secret).ok()?.trim_end_matches('\r');
    (!text.is_empty()).then(|| zeroize::Zeroizing::new(text.to_owned()))
}
