//! What can go wrong with a token, without advice: the CLI that reports it
//! knows who is reading and adds the next step.
use std::fmt;
use std::path::PathBuf;

use cryptoki::error::Error as CkError;

use crate::ALREADY_PROVISIONED;

/// Why a token could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// A PKCS#11 module could not be loaded or initialised.
    #[error("the PKCS#11 module {} cannot be used: {source}", module.display())]
    Module {
        /// The module.
        module: PathBuf,
        /// What the loader or `C_Initialize` said.
        source: CkError,
    },
    /// A token operation failed.
    #[error("{action}: {source}")]
    Failed {
        /// What was being done.
        action: &'static str,
        /// The token's own error.
        source: CkError,
    },
    /// The token went away during the operation.
    #[error("{action}: it is gone")]
    Gone {
        /// What was being done.
        action: &'static str,
    },
    /// The PIN is missing, wrong or locked.
    #[error(transparent)]
    Pin(#[from] PinProblem),
    /// No token sits in the slot asked for.
    #[error("there is no token in slot {slot} of {} ({count} token(s) attached; slots count from 0)", module.display())]
    NoSuchSlot {
        /// The module.
        module: PathBuf,
        /// The slot asked for, counted from 0 among slots with a token.
        slot: usize,
        /// How many tokens the module sees.
        count: usize,
    },
    /// Provisioning would overwrite a Sealrun dongle.
    #[error("{ALREADY_PROVISIONED} (\"{label}\")")]
    AlreadyProvisioned {
        /// The token's label (escaped).
        label: String,
    },
}

/// What is wrong with a token PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinProblem {
    /// No PIN was given and there is no terminal to ask on.
    Missing,
    /// The PIN source (a file's path, a variable's name, "the prompt")
    /// could not be read or holds no usable PIN.
    Unreadable(String),
    /// The token rejected the PIN.
    Wrong {
        /// The token locked its PIN after this try.
        locked: bool,
        /// One try is left before the token locks.
        final_try: bool,
    },
    /// The token's PIN is locked after too many wrong tries.
    Locked,
}

impl fmt::Display for PinProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinProblem::Missing => write!(f, "the token needs its PIN and there is no terminal to ask for it"),
            PinProblem::Unreadable(source) => write!(
                f,
                "no usable token PIN in {source} (it must be one line of 1 to {} characters)",
                crate::MAX_PIN_LEN
            ),
            PinProblem::Wrong { locked: true, .. } => write!(f, "the token rejected the PIN, and has now locked it"),
            PinProblem::Wrong { final_try: true, .. } => {
                write!(f, "the token rejected the PIN; one try is left before it locks itself")
            }
            PinProblem::Wrong { .. } => write!(f, "the token rejected the PIN"),
            PinProblem::Locked => write!(f, "the token's PIN is locked after too many wrong tries"),
        }
    }
}

impl std::error::Error for PinProblem {}
