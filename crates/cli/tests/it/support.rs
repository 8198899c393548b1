//! Running the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The golden files' folder.
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// `plumb ARGS` in `dir`, without colours.
pub fn plumb(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_plumb"));
    cmd.current_dir(dir).args(args).env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("plumb {args:?}: {e}"))
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Compares `actual` with the golden file `name` (writes it with `PLUMB_BLESS=1`).
pub fn golden(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("PLUMB_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with PLUMB_BLESS=1 to write it)",
            path.display()
        )
    });
    assert_eq!(
        actual,
        want,
        "{} differs (PLUMB_BLESS=1 regenerates it)",
        path.display()
    );
}

/// A binary of the workspace next to `plumb` (built by `cargo build`), built first when it is
/// missing (`cargo nextest run -p plumb-cli` builds only this package's binaries).
pub fn sibling_binary(name: &str) -> PathBuf {
    let plumb = PathBuf::from(env!("CARGO_BIN_EXE_plumb"));
    let path = plumb.with_file_name(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // The target dir is the one `plumb` was built in: `<target>/debug/plumb`.
        let target = plumb.parent().and_then(Path::parent).unwrap();
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", name, "--bin", name])
            .env("CARGO_TARGET_DIR", target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "cargo build -p {name} failed");
    }
    path
}
