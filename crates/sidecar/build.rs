//! Lays the release sidecar's code out in the order `symbol-order.txt` gives: the functions it
//! runs when it starts and serves, together, so the pages of code the kernel maps for them (64
//! KiB around each page first touched) hold little else. About 4 MB less resident memory at
//! idle; see `scripts/symbol-order.sh`, which writes the file, and BENCHMARKS.md.
//!
//! Only where the linker takes the file: release builds for x86_64 Linux with glibc, whose
//! default linker is LLD. `PLUMB_SYMBOL_ORDER=0` turns it off (a linker of your own that does
//! not know `--symbol-ordering-file`). Functions the file names that a build no longer has are
//! skipped, silently: a stale file costs memory, never correctness.
//!
//! The same builds pack the relative relocations (`-z pack-relative-relocs`) when the building
//! machine's glibc is 2.36 or later; `PLUMB_PACK_RELOCS=0` turns that off.

fn main() {
    println!("cargo::rerun-if-changed=symbol-order.txt");
    println!("cargo::rerun-if-env-changed=PLUMB_SYMBOL_ORDER");
    println!("cargo::rerun-if-env-changed=PLUMB_PACK_RELOCS");
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
        // Relative relocations packed (DT_RELR): the position-independent binary's ~32,000
        // relative relocations take 8 KiB instead of 770 KiB, which the loader reads whole at
        // start and which stayed resident. The binary then needs glibc 2.36 or later where it
        // runs (Debian 12, the image's base), so only when the building machine has it.
        if glibc_at_least(2, 36) && var("PLUMB_PACK_RELOCS") != "0" {
            println!("cargo::rustc-link-arg-bin=plumb-sidecar=-Wl,-z,pack-relative-relocs");
        }
    }
}

/// Whether the building machine's glibc (`getconf GNU_LIBC_VERSION`: "glibc 2.36") is at least
/// `major.minor`; false when it cannot tell.
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
    else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .trim()
        .trim_start_matches("glibc ")
        .split('.')
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}
