//! The command line, as clap reads it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::render::Output;

/// plumb: check, explain, inspect and try Plumb's LlmRoutes.
///
/// Also a kubectl plugin: installed as `kubectl-plumb` on the PATH, `kubectl plumb …` runs it.
#[derive(Debug, Parser)]
#[command(name = "plumb", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The exit codes, as `--help` shows them.
pub const EXIT_CODES: &str = "Exit codes:
  0   success
  1   check found problems; a tried request failed; a route was not found
  2   usage error (unknown flag, missing argument)
  64  invalid configuration (a routes file that does not compile, a bad kubeconfig)
  66  an input file cannot be read
  69  the cluster or the sidecar cannot be reached";

/// One command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check LlmRoute files as the API server, the operator and the sidecar would.
    ///
    /// Each problem is printed as `file:line:column: field: message — how to fix`.
    Check(CheckArgs),
    /// Show the recovery plan of the route serving a model, and what a provider's answer leads to.
    Explain(ExplainArgs),
    /// Show LlmRoutes in the cluster: conditions, sidecars and what the fleet knows per target.
    Status(StatusArgs),
    /// Send one request through a sidecar and say who answered and how.
    Try(TryArgs),
    /// Write a starter routes file for the given providers.
    Init(InitArgs),
    /// Print a shell completion script.
    Completion(CompletionArgs),
}

/// `plumb check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Routes files (multi-document YAML); `-` reads standard input.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Check for the cluster, through the kubeconfig: compile as the operator does (ConfigMap
    /// schemas read from the cluster, schema files refused) and check that every Secret a
    /// route names exists, holds the key and carries the label `plumb.dev/credentials: "true"`.
    #[arg(long)]
    pub cluster: bool,
    /// The namespace of documents that name none (with `--cluster`; default: the kubeconfig's).
    #[arg(short, long, requires = "cluster")]
    pub namespace: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

/// `plumb explain`.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// A routes file.
    pub file: PathBuf,
    /// The model a client asks for.
    #[arg(short, long)]
    pub model: String,
    /// Only this failure class (snake_case, e.g. `rate_limited`).
    #[arg(long)]
    pub class: Option<String>,
    /// A provider's HTTP status to classify (with `--body`).
    #[arg(long)]
    pub status: Option<u16>,
    /// The provider's error body to classify.
    #[arg(long, requires = "status")]
    pub body: Option<String>,
    /// Provider response headers for the classification, `name: value` (repeatable), e.g.
    /// `--header 'retry-after: 2'`.
    #[arg(long = "header", requires = "status")]
    pub headers: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

/// `plumb status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// One route (default: every route of the namespace).
    pub route: Option<String>,
    /// The namespace (default: the kubeconfig's).
    #[arg(short, long, conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Render again whenever a route changes (until interrupted).
    #[arg(short, long)]
    pub watch: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

/// The client API family a request is sent in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Api {
    /// OpenAI Chat Completions (`POST /v1/chat/completions`).
    #[default]
    Openai,
    /// Anthropic Messages (`POST /v1/messages`).
    Anthropic,
    /// OpenAI Responses (`POST /v1/responses`).
    Responses,
}

/// `plumb try`.
#[derive(Debug, clap::Args)]
pub struct TryArgs {
    /// The sidecar's address, e.g. `http://127.0.0.1:15400`.
    pub url: String,
    /// The prompt.
    pub prompt: String,
    /// The model to ask for (a name a route serves).
    #[arg(short, long)]
    pub model: String,
    /// Stream the answer.
    #[arg(long)]
    pub stream: bool,
    /// The API family to speak.
    #[arg(long, value_enum, default_value_t)]
    pub api: Api,
    /// Maximum tokens of the answer.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: u32,
    /// The caller's own API key (sent only for `passthrough` targets; shown masked).
    #[arg(long, env = "PLUMB_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Give up after this long.
    #[arg(long, default_value = "120s", value_parser = humantime_duration)]
    pub timeout: Duration,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

/// A provider a starter file has a target for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum)]
pub enum StarterProvider {
    /// OpenAI.
    Openai,
    /// Anthropic.
    Anthropic,
    /// Azure OpenAI.
    AzureOpenai,
    /// A local OpenAI-compatible server (vLLM, Ollama).
    OpenaiCompatible,
    /// Google's Gemini API, with an API key.
    Gemini,
    /// AWS Bedrock's Converse API, signed with the environment's AWS credentials.
    Bedrock,
}

/// `plumb init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Providers, in order of preference (repeatable).
    #[arg(long = "provider", value_enum, required = true)]
    pub providers: Vec<StarterProvider>,
    /// The model name clients will ask for.
    #[arg(long, default_value = "chat")]
    pub model: String,
    /// The route's name.
    #[arg(long, default_value = "chat")]
    pub name: String,
    /// Where the keys come from: environment variables (standalone sidecar) or a Secret (cluster).
    #[arg(long, value_enum, default_value_t)]
    pub credentials: StarterCredentials,
    /// Write here instead of standard output (refuses to overwrite).
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
}

/// Where a starter file's keys come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum StarterCredentials {
    /// Environment variables of the sidecar (`plumb-sidecar --routes`).
    #[default]
    Env,
    /// A Secret `llm-keys` labelled `plumb.dev/credentials: "true"` (in a cluster).
    Secret,
}

/// `plumb completion`.
#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

fn humantime_duration(s: &str) -> Result<Duration, String> {
    plumb_policy::duration::parse(s).map_err(|e| e.to_string())
}
