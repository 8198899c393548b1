//! Golden outputs of `check`, `explain`, `init` and `completion`.

use crate::support::{golden, golden_dir, plumb, stderr, stdout};

fn check_dir() -> std::path::PathBuf {
    golden_dir().join("check")
}

#[test]
fn check_accepts_a_valid_file_and_every_example_route() {
    let o = plumb(&check_dir(), &["check", "valid.yaml"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    golden("check/valid.out", &stdout(&o));

    let examples = golden_dir().join("../../../../examples/routes");
    let mut files: Vec<String> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    files.sort();
    let mut args = vec!["check"];
    args.extend(files.iter().map(String::as_str));
    let o = plumb(&examples, &args, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn check_places_every_kind_of_problem_at_file_line_column() {
    let o = plumb(
        &check_dir(),
        &[
            "check",
            "several-errors.yaml",
            "not-yaml.yaml",
            "valid.yaml",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    golden("check/several-errors.out", &out);
    // One line per problem, each `file:line:column: field: message — how to fix`.
    for want in [
        "several-errors.yaml:11:7: spec.targets[0].provider: ",
        "several-errors.yaml:15:7: spec.targets[0].retries: unknown field \"retries\"",
        "several-errors.yaml:23:1: spec: target names must be unique within a route",
        "several-errors.yaml:53:5: spec.deadlines.firstToken: ",
        "several-errors.yaml:85:14: spec.match.models[0]: \"summary-2\" is already served by route default/taken",
        "not-yaml.yaml:7:3: not valid YAML",
    ] {
        assert!(out.contains(want), "{want}\n{out}");
    }
    // A key in a URL is never repeated.
    assert!(!out.contains("hunter2"), "{out}");
}

#[test]
fn check_reports_json_and_yaml() {
    let o = plumb(
        &check_dir(),
        &["check", "-o", "json", "several-errors.yaml"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    golden("check/several-errors.json", &stdout(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["documents"][0]["problems"][0]["line"], 10);

    let o = plumb(&check_dir(), &["check", "-o", "yaml", "valid.yaml"], &[]);
    assert_eq!(o.status.code(), Some(0));
    golden("check/valid.yaml.out", &stdout(&o));
}

#[test]
fn check_reads_standard_input_and_names_unreadable_files() {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_plumb"))
        .args(["check", "-"])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let text = std::fs::read(check_dir().join("several-errors.yaml")).unwrap();
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("<stdin>:11:7: spec.targets[0].provider: "),
        "{}",
        stdout(&o)
    );

    let o = plumb(&check_dir(), &["check", "missing.yaml"], &[]);
    assert_eq!(o.status.code(), Some(66));
    assert!(
        stderr(&o).contains("cannot read missing.yaml"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn explain_shows_the_plan_and_what_a_rate_limit_leads_to() {
    let dir = check_dir();
    let o = plumb(&dir, &["explain", "valid.yaml", "--model", "chat"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    golden("explain/plan.out", &stdout(&o));

    let body = r#"{"error":{"message":"Rate limit reached for gpt-4o","type":"requests","code":"rate_limit_exceeded"}}"#;
    let o = plumb(
        &dir,
        &[
            "explain",
            "valid.yaml",
            "--model",
            "chat",
            "--class",
            "rate_limited",
            "--status",
            "429",
            "--body",
            body,
            "--header",
            "retry-after: 2",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    golden("explain/rate-limited.out", &out);
    assert!(
        out.contains("1. retry openai after 2s (as the provider asked)"),
        "{out}"
    );
    assert!(
        out.contains("2. fail over (retries spent): azure-eastus, then local-vllm"),
        "{out}"
    );
}

#[test]
fn explain_classifies_provider_answers_with_the_sidecars_classifier() {
    let dir = check_dir();
    let cases = [
        (
            "401",
            r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#,
            "auth",
        ),
        (
            "400",
            r#"{"error":{"message":"This model's maximum context length is 128000 tokens","code":"context_length_exceeded"}}"#,
            "context_length",
        ),
        (
            "529",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            "overloaded",
        ),
        (
            "404",
            r#"{"error":{"message":"The model `gpt-5` does not exist","code":"model_not_found"}}"#,
            "invalid_model",
        ),
    ];
    for (status, body, class) in cases {
        let o = plumb(
            &dir,
            &[
                "explain",
                "valid.yaml",
                "-m",
                "chat",
                "--status",
                status,
                "--body",
                body,
                "-o",
                "json",
            ],
            &[],
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["scenario"]["class"], class, "{status} {body}");
    }
    let o = plumb(
        &dir,
        &[
            "explain",
            "valid.yaml",
            "-m",
            "chat",
            "--class",
            "context_length",
            "--status",
            "400",
            "--body",
            r#"{"error":{"message":"maximum context length exceeded","code":"context_length_exceeded"}}"#,
        ],
        &[],
    );
    golden("explain/context-length.out", &stdout(&o));
}

#[test]
fn explain_refuses_an_invalid_file_and_an_unknown_model() {
    let dir = check_dir();
    let o = plumb(&dir, &["explain", "several-errors.yaml", "-m", "chat"], &[]);
    assert_eq!(o.status.code(), Some(64));
    assert!(
        stderr(&o).contains("invalid configuration"),
        "{}",
        stderr(&o)
    );
    let o = plumb(&dir, &["explain", "valid.yaml", "-m", "nope"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("served: chat, gpt-4o"),
        "{}",
        stderr(&o)
    );
    let o = plumb(
        &dir,
        &["explain", "valid.yaml", "-m", "chat", "--class", "nope"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn init_writes_a_commented_starter_that_check_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let o = plumb(
        dir.path(),
        &[
            "init",
            "--provider",
            "openai",
            "--provider",
            "anthropic",
            "-f",
            "routes.yaml",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(dir.path().join("routes.yaml")).unwrap();
    golden("init/openai-anthropic.yaml", &text);
    let o = plumb(dir.path(), &["check", "routes.yaml"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // It never overwrites.
    let o = plumb(
        dir.path(),
        &["init", "--provider", "openai", "-f", "routes.yaml"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));

    let o = plumb(
        dir.path(),
        &[
            "init",
            "--provider",
            "azure-openai",
            "--provider",
            "openai-compatible",
            "--credentials",
            "secret",
            "--model",
            "*",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0));
    golden("init/azure-local-secret.yaml", &stdout(&o));
    std::fs::write(dir.path().join("s.yaml"), o.stdout).unwrap();
    let o = plumb(dir.path(), &["check", "s.yaml"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn usage_errors_exit_2_and_help_lists_the_exit_codes() {
    let o = plumb(&check_dir(), &["check"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let o = plumb(&check_dir(), &["--help"], &[]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("64  invalid configuration"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn completion_scripts_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let o = plumb(&check_dir(), &["completion", shell], &[]);
        assert_eq!(o.status.code(), Some(0));
        assert!(stdout(&o).contains("explain"), "{shell}");
    }
}

#[test]
fn installed_as_kubectl_plumb_it_behaves_the_same_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("kubectl-plumb");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_plumb"), &plugin).unwrap();
    let o = std::process::Command::new(&plugin)
        .current_dir(check_dir())
        .args(["check", "valid.yaml"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    golden("check/valid.out", &stdout(&o));
    let o = std::process::Command::new(&plugin)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("Usage: kubectl plumb <COMMAND>"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn colours_only_on_a_terminal_and_never_with_no_color() {
    // `script` (util-linux, essential on Debian) runs the command on a pseudo-terminal.
    let on_tty = |no_color: Option<&str>| {
        let mut cmd = std::process::Command::new("script");
        cmd.current_dir(check_dir())
            .args([
                "-qec",
                &format!("{} check valid.yaml", env!("CARGO_BIN_EXE_plumb")),
                "/dev/null",
            ])
            .env_remove("NO_COLOR")
            .env("TERM", "xterm");
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let o = cmd.output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        stdout(&o)
    };
    assert!(
        on_tty(None).contains("\x1b[32mok\x1b[0m"),
        "{:?}",
        on_tty(None)
    );
    assert!(!on_tty(Some("1")).contains('\x1b'));
    // Not a terminal: plain.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_plumb"))
        .current_dir(check_dir())
        .args(["check", "valid.yaml"])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(!stdout(&o).contains('\x1b'));
}
