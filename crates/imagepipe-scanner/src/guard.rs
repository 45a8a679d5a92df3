//! Runs third-party readers of untrusted bytes so that a panic inside them becomes an error.
//!
//! `catch_unwind` alone stops the unwinding, but the default panic hook has already printed
//! `thread '…' panicked at …` to stderr by then, which reads as a crash right before the clear
//! error the step gives. So the hook is wrapped once: it stays quiet for a panic on a thread
//! that is inside [`quietly`], and runs as before for every other panic.

use std::cell::Cell;
use std::sync::Once;

thread_local! {
    static GUARDED: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f`, returning the panic's message instead of unwinding.
pub(crate) fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) == 0 {
                previous(info);
            }
        }));
    });
    GUARDED.with(|g| g.set(g.get() + 1));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(g.get() - 1));
    result.map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_the_thread_goes_on() {
        assert_eq!(quietly(|| 7), Ok(7));
        let err = quietly(|| -> u8 { panic!("index out of range") }).unwrap_err();
        assert_eq!(err, "index out of range");
        let n = 3;
        let err = quietly(|| -> u8 { panic!("{n} bytes") }).unwrap_err();
        assert_eq!(err, "3 bytes");
        assert_eq!(GUARDED.with(Cell::get), 0);
    }
}
