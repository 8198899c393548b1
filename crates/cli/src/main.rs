//! `plumb` (and `kubectl-plumb`): parse the command line, run the command, exit with its code
//! (see `plumb_cli::exit`).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::FromArgMatches;
use plumb_cli::args::Cli;
use plumb_cli::exit;
use plumb_cli::run::{command, display_name, run};

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next();
    let name = display_name(argv0.as_deref().and_then(|a| a.to_str()));
    let cli = match command(name)
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    match rt.block_on(run(cli, name, &mut stdout)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::from(e.code)
        }
    }
}
