//! What a vendor should do next, for errors whose cause does not say it.
//! The library's errors name the problem; the advice for the person at
//! `sealsdk` lives here, next to the command line that prints it (the
//! launcher words its own for end users).
use sealrun_sdk::SdkError;
use sealrun_token::{PinProblem, TokenError};

/// The next step for `e`, if the message itself does not give one.
pub(crate) fn next_step(e: &SdkError) -> Option<&'static str> {
    match e {
        SdkError::Token(t) => Some(for_token(t)),
        _ => None,
    }
}

fn for_token(e: &TokenError) -> &'static str {
    match e {
        TokenError::Module { .. } => {
            "Check that the token's driver is installed and that --module names its PKCS#11 library."
        }
        TokenError::Pin(PinProblem::Missing) => {
            "Set SEALSDK_PIN, or put the PIN in a file readable only by you and pass --pin-file FILE."
        }
        TokenError::Pin(PinProblem::Unreadable(_)) => "Give the PIN as the first line of the file or variable.",
        TokenError::Pin(PinProblem::Wrong { locked: true, .. } | PinProblem::Locked) => {
            "Unlock the user PIN with the token's SO PIN (its vendor's tool, or `pkcs11-tool --login --login-type so --init-pin`); sealsdk will not try a locked token."
        }
        TokenError::Pin(PinProblem::Wrong { final_try: true, .. }) => {
            "Check the PIN before trying again: the next wrong try locks the token."
        }
        TokenError::Pin(_) => "Check the PIN and try again.",
        TokenError::NoSuchSlot { .. } => {
            "Pick the token with --slot (`pkcs11-tool --module MODULE --list-token-slots` lists them)."
        }
        TokenError::AlreadyProvisioned { .. } => {
            "Pass --replace to overwrite it (licenses for the old dongle stop working)."
        }
        _ => "Check that the token is plugged in properly, then try again.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 26: a vendor at `sealsdk` was told to set the launcher's
    /// `SEALRUN_PIN` and pass `--pkcs11-module`, which `sealsdk` does not read.
    #[test]
    fn token_advice_names_sealsdk_settings_not_the_launchers() {
        let missing = for_token(&TokenError::Pin(PinProblem::Missing));
        assert!(missing.contains("SEALSDK_PIN") && missing.contains("--pin-file"), "{missing}");
        let module = for_token(&TokenError::Module {
            module: "/x.so".into(),
            source: sealrun_token::cryptoki::error::Error::NotSupported,
        });
        assert!(module.contains("--module"), "{module}");
        for e in [
            TokenError::Pin(PinProblem::Missing),
            TokenError::Pin(PinProblem::Locked),
            TokenError::Pin(PinProblem::Wrong { locked: false, final_try: true }),
            TokenError::Gone { action: "reading" },
            TokenError::AlreadyProvisioned { label: "t".into() },
        ] {
            let step = for_token(&e);
            assert!(
                !step.contains("SEALRUN_") && !step.contains("pkcs11-module") && !step.contains("sealrun "),
                "{step}"
            );
        }
    }
}
