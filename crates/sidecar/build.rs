//! Lays the release sidecar's code out in the order `symbol-order.txt` gives: the functions it
//! runs when it starts and serves, together, so the pages of code the kernel maps for them (64
//! KiB around each page first touched) hold little else. About 4 MB less resident memory at
//! idle; see `scripts/symbol-order.sh`, which writes the file, and BENCHMARKS.md.
//!
//! Only where the linker takes the file: release builds for x86_64 Linux with glibc, whose
//! default linker is LLD. `PLUMB_SYMBOL_ORDER=0` turns it off (a linker of your own that does
//! not know `--symbol-ordering-file`). Functions the file names that a build no longer has are
//! skipped, silently: a stale file costs memory, never correctness.

fn main() {
    println!("cargo::rerun-if-changed=symbol-order.txt");
    println!("cargo::rerun-if-env-changed=PLUMB_SYMBOL_ORDER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let wanted = var("PROFILE") == "release"
        && var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
        && var("PLUMB_SYMBOL_ORDER") != "0";
    if wanted {
        let file = format!("{}/symbol-order.txt", var("CARGO_MANIFEST_DIR"));
        println!("cargo::rustc-link-arg-bin=plumb-sidecar=-Wl,--symbol-ordering-file={file}");
        println!("cargo::rustc-link-arg-bin=plumb-sidecar=-Wl,--no-warn-symbol-ordering");
    }
}
