//! Runs one parsed command: reads its inputs, calls the module that decides, prints.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use clap::CommandFactory;

use crate::args::{Cli, Command};
use crate::check::{Mode, check_files, check_files_in};
use crate::exit::{self, Failure};
use crate::explain::{Answer, explain, parse_class};
use crate::render::{Output, Style};
use crate::starter::Starter;
use crate::{call, cluster, status};

/// The name the binary was invoked as decides how it calls itself in help and completions:
/// `kubectl plumb` when installed as the kubectl plugin `kubectl-plumb`.
pub fn display_name(argv0: Option<&str>) -> &'static str {
    let stem = argv0
        .map(Path::new)
        .and_then(Path::file_stem)
        .and_then(|s| s.to_str())
        .unwrap_or("plumb");
    if stem.starts_with("kubectl-plumb") || stem.starts_with("kubectl_plumb") {
        "kubectl plumb"
    } else {
        "plumb"
    }
}

/// The clap command under the name it was invoked as.
pub fn command(name: &'static str) -> clap::Command {
    Cli::command().name(name).bin_name(name)
}

fn write(out: &mut dyn Write, text: &str) -> Result<(), Failure> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::new(exit::FAILED, format!("cannot write the output: {e}")))
}

fn read_input(path: &Path) -> Result<(String, String), Failure> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| {
            Failure::new(exit::NO_INPUT, format!("cannot read standard input: {e}"))
        })?;
        return Ok(("<stdin>".into(), text));
    }
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::new(exit::NO_INPUT, format!("cannot read {name}: {e}")))?;
    Ok((name, text))
}

/// Runs `cli`, printing to `out`; the exit code on success, or why it stopped.
pub async fn run(cli: Cli, name: &'static str, out: &mut dyn Write) -> Result<u8, Failure> {
    let style = Style::detect();
    let fmt_err = |e: String| Failure::new(exit::FAILED, e);
    match cli.command {
        Command::Check(args) => {
            let files = args
                .files
                .iter()
                .map(|p| read_input(p))
                .collect::<Result<Vec<_>, _>>()?;
            let report = if args.cluster {
                let client = cluster::client().await?;
                let namespace = args
                    .namespace
                    .clone()
                    .unwrap_or_else(|| client.default_namespace().to_owned());
                // Compiled as the operator compiles: ConfigMap schemas from the cluster.
                let mut mode = Mode::Cluster {
                    namespace,
                    config_maps: Default::default(),
                };
                let (maps, missing) =
                    cluster::config_maps(&client, &check_files_in(&files, &mode)).await?;
                if let Mode::Cluster { config_maps, .. } = &mut mode {
                    *config_maps = maps;
                }
                let mut report = check_files_in(&files, &mode);
                for (document, field, message, fix) in missing {
                    report.add_cluster_problem(document, &field, message, fix);
                }
                cluster::check_secrets(&client, &mut report).await?;
                report
            } else {
                check_files(&files)
            };
            write(out, &report.render(args.output, style).map_err(fmt_err)?)?;
            Ok(if report.ok() { exit::OK } else { exit::FAILED })
        }
        Command::Explain(args) => {
            let (file, text) = read_input(&args.file)?;
            let dir = args.file.parent().filter(|d| !d.as_os_str().is_empty());
            let sources =
                plumb_policy::contract::Sources::in_dir(dir.unwrap_or_else(|| Path::new(".")));
            let routes = plumb_policy::parse_routes_file_with(&text, &sources).map_err(|e| {
                Failure::new(
                    exit::CONFIG,
                    format!("{file}: invalid configuration: {e} (run `{name} check {file}` for every problem with its place)"),
                )
            })?;
            let route = routes.lookup(&args.model).ok_or_else(|| {
                Failure::new(
                    exit::FAILED,
                    format!(
                        "no route in {file} serves the model {:?}; served: {}",
                        args.model,
                        routes.models().join(", ")
                    ),
                )
            })?;
            let class = args
                .class
                .as_deref()
                .map(parse_class)
                .transpose()
                .map_err(|e| Failure::new(exit::USAGE, e))?;
            let answer = match args.status {
                Some(status) => {
                    let mut headers = http::HeaderMap::new();
                    for h in &args.headers {
                        let (k, v) = h.split_once(':').ok_or_else(|| {
                            Failure::new(
                                exit::USAGE,
                                format!("--header {h:?}: write `name: value`"),
                            )
                        })?;
                        let k = http::HeaderName::from_bytes(k.trim().as_bytes()).map_err(|e| {
                            Failure::new(exit::USAGE, format!("--header {h:?}: {e}"))
                        })?;
                        let v = http::HeaderValue::from_str(v.trim()).map_err(|e| {
                            Failure::new(exit::USAGE, format!("--header {h:?}: {e}"))
                        })?;
                        headers.append(k, v);
                    }
                    Some(Answer {
                        status,
                        body: args.body.clone().unwrap_or_default(),
                        headers,
                    })
                }
                None => None,
            };
            let e = explain(route, &args.model, class, answer.as_ref());
            write(out, &e.render(args.output, style).map_err(fmt_err)?)?;
            Ok(exit::OK)
        }
        Command::Status(args) => {
            let client = cluster::client().await?;
            let sel = status::Selection {
                namespace: if args.all_namespaces {
                    None
                } else {
                    Some(
                        args.namespace
                            .clone()
                            .unwrap_or_else(|| client.default_namespace().to_owned()),
                    )
                },
                route: args.route.clone(),
            };
            if args.watch {
                let clear = args.output == Output::Table && std::io::stdout().is_terminal();
                status::watch(&client, &sel, args.output, style, clear, |frame| {
                    write(out, frame).is_ok()
                })
                .await?;
                return Ok(exit::OK);
            }
            let routes = status::read(&client, &sel).await?;
            write(
                out,
                &status::render(&routes, args.output, style).map_err(fmt_err)?,
            )?;
            Ok(exit::OK)
        }
        Command::Try(args) => {
            let req = call::Request {
                url: args.url.clone(),
                model: args.model.clone(),
                prompt: args.prompt.clone(),
                stream: args.stream,
                api: args.api,
                max_tokens: args.max_tokens,
                api_key: args.api_key.clone(),
                timeout: args.timeout,
            };
            let live = args.output == Output::Table;
            let outcome = call::send(&req, |text| {
                if live {
                    let _ = write(out, text);
                }
            })
            .await?;
            write(
                out,
                &outcome.render(args.output, style, false).map_err(fmt_err)?,
            )?;
            Ok(if outcome.ok() { exit::OK } else { exit::FAILED })
        }
        Command::Init(args) => {
            let text = Starter {
                providers: args.providers.clone(),
                model: args.model.clone(),
                name: args.name.clone(),
                credentials: args.credentials,
            }
            .render();
            match &args.file {
                None => write(out, &text)?,
                Some(path) => {
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(path)
                        .map_err(|e| {
                            Failure::new(
                                exit::FAILED,
                                format!("cannot create {}: {e}", path.display()),
                            )
                        })?;
                    f.write_all(text.as_bytes()).map_err(|e| {
                        Failure::new(
                            exit::FAILED,
                            format!("cannot write {}: {e}", path.display()),
                        )
                    })?;
                    write(
                        out,
                        &format!(
                            "wrote {}; check it with `{name} check {}`\n",
                            path.display(),
                            path.display()
                        ),
                    )?;
                }
            }
            Ok(exit::OK)
        }
        Command::Completion(args) => {
            // The plugin completes under its file name (kubectl's plugin completion calls it so).
            let bin = if name == "plumb" {
                "plumb"
            } else {
                "kubectl-plumb"
            };
            let mut cmd = command(name);
            let mut buf = Vec::new();
            clap_complete::generate(args.shell, &mut cmd, bin, &mut buf);
            write(out, &String::from_utf8_lossy(&buf))?;
            Ok(exit::OK)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubectl_plugin_name_is_recognised_from_argv0() {
        assert_eq!(
            display_name(Some("/usr/local/bin/kubectl-plumb")),
            "kubectl plumb"
        );
        assert_eq!(display_name(Some("kubectl-plumb.exe")), "kubectl plumb");
        assert_eq!(display_name(Some("./target/debug/plumb")), "plumb");
        assert_eq!(display_name(None), "plumb");
    }
}
