//! Links the `qiao` executable at a fixed address (not position-independent) on Linux.
//!
//! A position-independent executable is relocated by the dynamic loader at every start: ~38,000
//! relative relocations, each a write to a page of the binary's data that is then copied for the
//! process, before `main` runs. For a command that answers in a few milliseconds (a cohort on a
//! store, `--help`) that was a tenth of the process. At a fixed address the linker resolves them
//! once. The library crates are compiled as usual (position-independent code links into either).

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
