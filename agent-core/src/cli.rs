//! The command line: one clap definition drives parsing, `--help`, the man page and completions.
//!
//! Compatible with the old Perl agent's habits (`-t Task`, `-k KEY`, `-s URL`, `-w N`, `-wr N`,
//! `--list-tasks`, `--get-agentid`, `-d [N]`), plus subcommands for inspection.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::wire::TaskName;

/// Exit codes: the one table behind `AgentError::exit_code`, `--help`, the man page and the
/// README's table (a test compares them).
pub mod exit {
    pub const SUCCESS: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const COMMAND_LINE: u8 = 2;
    pub const CONFIG: u8 = 3;
    pub const NOT_ENROLLED: u8 = 4;
    pub const STATE: u8 = 5;
    /// Like clamscan's 1, but distinct from "the task failed".
    pub const MALWARE_FOUND: u8 = 6;
    /// `daemon`: another daemon already runs on this state folder.
    pub const DAEMON_RUNNING: u8 = 7;
}

/// (code, meaning), in order.
pub const EXIT_CODES: &[(u8, &str)] = &[
    (exit::SUCCESS, "success"),
    (
        exit::FAILED,
        "the task failed (server error, network error after retries, backend error, results kept for the next run)",
    ),
    (
        exit::COMMAND_LINE,
        "bad command line (unknown task or option, -t Scan without --path or with a missing path, service outside Windows)",
    ),
    (
        exit::CONFIG,
        "configuration error (config file, key format, TLS files, no server or backend set, unknown backend)",
    ),
    (
        exit::NOT_ENROLLED,
        "not enrolled: run -t Enrollment first (no request is sent)",
    ),
    (
        exit::STATE,
        "local state error (store unreadable or corrupt - moved aside, never deleted -, locked, disk full)",
    ),
    (
        exit::MALWARE_FOUND,
        "-t Scan found malware (the scan itself completed)",
    ),
    (
        exit::DAEMON_RUNNING,
        "daemon: another daemon already runs on this state folder (it holds daemon.lock)",
    ),
];

/// The exit code table as `--help` and the man page show it.
pub fn exit_codes_help() -> String {
    let mut s = String::from("Exit codes:");
    for (code, meaning) in EXIT_CODES {
        s.push_str(&format!("\n  {code}  {meaning}"));
    }
    s
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "armadito-agent",
    version,
    about = "Runs and watches antivirus software for a GLPI server (Armadito plugin).",
    long_about = "Runs and watches antivirus software for a GLPI server (Armadito plugin 0.10.1).\n\
                  Each run performs one task (-t) or one inspection subcommand.",
    after_help = exit_codes_help()
)]
pub struct Cli {
    /// Task to run
    #[arg(short = 't', long, value_enum, value_name = "TASK")]
    pub task: Option<TaskName>,

    #[command(flatten)]
    pub options: GlobalOptions,

    /// Print the supported tasks and exit
    #[arg(long)]
    pub list_tasks: bool,

    /// Print the backends found in the plugins folder and exit
    #[arg(long)]
    pub list_backends: bool,

    /// Print the stored agent id (0 when not enrolled) and exit
    #[arg(long)]
    pub get_agentid: bool,

    /// Print the stored scheduler id (0 when not enrolled) and exit
    #[arg(long)]
    pub get_schedulerid: bool,

    /// Scan: a file or folder to scan (repeatable)
    #[arg(long, value_name = "PATH")]
    pub path: Vec<PathBuf>,

    /// Scan: send the detections to the server as alerts
    #[arg(long)]
    pub report: bool,

    /// AVConfig: report the configuration even if unchanged since the last report
    #[arg(long)]
    pub force: bool,

    /// Sleep N seconds before the task
    #[arg(short = 'w', long, value_name = "N")]
    pub wait: Option<u64>,

    /// Sleep a random 0..N-1 seconds before the task (old spelling: -wr N), to spread cron runs
    #[arg(long, value_name = "N")]
    pub wait_rand: Option<u64>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options shared by every task; each can also come from the environment or `agent.toml`
/// (command line > environment > file > defaults).
#[derive(Debug, Args, Default, Clone)]
pub struct GlobalOptions {
    /// Configuration file [default: /etc/armadito-agent/agent.toml when it exists]
    #[arg(
        short = 'c',
        long,
        env = "ARMADITO_AGENT_CONFIG",
        value_name = "FILE",
        global = true
    )]
    pub config: Option<PathBuf>,

    /// GLPI plugin URL, e.g. https://glpi.example.org/glpi/plugins/armadito
    #[arg(
        short = 's',
        long,
        env = "ARMADITO_AGENT_SERVER",
        value_name = "URL",
        global = true
    )]
    pub server: Option<String>,

    /// Antivirus backend to use (a plugin name)
    #[arg(
        long,
        visible_alias = "antivirus",
        env = "ARMADITO_AGENT_BACKEND",
        value_name = "NAME",
        global = true
    )]
    pub backend: Option<String>,

    /// Enrollment key; deprecated on the command line (argv is visible to every local user):
    /// use ARMADITO_AGENT_KEY or --key-file
    #[arg(
        short = 'k',
        long,
        env = "ARMADITO_AGENT_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub key: Option<String>,

    /// File holding the enrollment key (`-` = read it from stdin)
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// Folder of the agent's state (ids, job queue, outbox)
    #[arg(
        long,
        env = "ARMADITO_AGENT_STATE_DIR",
        value_name = "DIR",
        global = true
    )]
    pub state_dir: Option<PathBuf>,

    /// Folder of backend plugins
    #[arg(
        long,
        env = "ARMADITO_AGENT_PLUGINS_DIR",
        value_name = "DIR",
        global = true
    )]
    pub plugins_dir: Option<PathBuf>,

    /// Debug logging (-d or -d 1: debug, -d 2: trace)
    #[arg(short = 'd', long, value_name = "LEVEL", num_args = 0..=1, default_missing_value = "1", global = true)]
    pub debug: Option<u8>,

    /// Do not verify the server's TLS certificate (unsafe; for tests only)
    #[arg(long, env = "ARMADITO_AGENT_NO_SSL_CHECK", global = true)]
    pub no_ssl_check: bool,

    /// PEM file of the CA that signed the server certificate
    #[arg(
        long,
        env = "ARMADITO_AGENT_CA_CERT_FILE",
        value_name = "FILE",
        global = true
    )]
    pub ca_cert_file: Option<PathBuf>,

    /// Folder of PEM CA certificates
    #[arg(
        long,
        env = "ARMADITO_AGENT_CA_CERT_DIR",
        value_name = "DIR",
        global = true
    )]
    pub ca_cert_dir: Option<PathBuf>,

    /// HTTP(S) proxy URL (default: the https_proxy/http_proxy/no_proxy environment)
    #[arg(long, env = "ARMADITO_AGENT_PROXY", value_name = "URL", global = true)]
    pub proxy: Option<String>,

    /// HTTP timeout in seconds [default: 180]
    #[arg(
        long,
        env = "ARMADITO_AGENT_TIMEOUT",
        value_name = "SECS",
        global = true
    )]
    pub timeout: Option<u64>,

    /// HTTP basic-auth user of the web server in front of GLPI (the password comes from
    /// ARMADITO_AGENT_PASSWORD or the config file, never the command line)
    #[arg(
        short = 'u',
        long,
        env = "ARMADITO_AGENT_USER",
        value_name = "USER",
        global = true
    )]
    pub user: Option<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run as a service in the foreground: every task on its schedule, jobs as soon as they
    /// arrive, live alerts, plugins hot-loaded (SIGTERM/SIGINT stop, SIGHUP reloads agent.toml;
    /// systemd Type=notify)
    Daemon,
    /// Show the running daemon (if any), identity, enrollment and store status
    Status {
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// List the local job queue (state, priority, attempts, times, last error)
    Queue {
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// List the messages waiting for delivery to the server
    Outbox {
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// List the backend plugins found, available or refused (read from the files: no plugin
    /// code runs unless --check)
    Plugins {
        /// JSON output
        #[arg(long)]
        json: bool,
        /// Also start each backend (its new() with its settings) and report failures
        #[arg(long)]
        check: bool,
    },
    /// Backend set-up done on this host by an administrator (never from the server)
    Backend {
        #[command(subcommand)]
        action: BackendAction,
    },
    /// Manage the Windows service that runs the daemon (Windows only: on Linux the package's
    /// systemd unit does this; elsewhere these exit 2)
    Service {
        #[command(subcommand)]
        action: ServiceAction,
    },
    /// Print shell completions
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    Man,
    /// Serve one plugin over stdin/stdout (used by the agent itself for process isolation)
    #[command(hide = true)]
    PluginHost {
        #[arg(long)]
        plugin: PathBuf,
    },
}

/// `armadito-agent backend …`.
#[derive(Debug, Clone, Subcommand)]
pub enum BackendAction {
    /// Install the configured backend's detection hook (ClamAV: the VirusEvent hook, its spool
    /// and the clamd.conf line, then restart clamd)
    InstallHook {
        /// Replace a VirusEvent command the administrator set up
        #[arg(long)]
        force: bool,
    },
}

/// `armadito-agent service …` (Windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum ServiceAction {
    /// Register the service (automatic start, as LocalSystem, restarted on failure); a -c FILE
    /// given here is stored in its command line
    Install,
    /// Stop the service if it runs, then remove it
    Uninstall,
    /// Start the installed service
    Start,
    /// Stop the service and wait until it has stopped
    Stop,
    /// The service's own entry point, started by the Service Control Manager
    #[command(hide = true)]
    Run,
}

/// Old single-dash long options that clap cannot express: `-wr N` and `-av NAME`.
pub fn normalize_legacy_args<I: IntoIterator<Item = OsString>>(args: I) -> Vec<OsString> {
    args.into_iter()
        .map(|a| match a.to_str() {
            Some("-wr") => OsString::from("--wait-rand"),
            Some("-av") => OsString::from("--antivirus"),
            _ => a,
        })
        .collect()
}

pub fn command() -> clap::Command {
    Cli::command()
}

/// The man page, rendered from the same definition as `--help`.
pub fn render_man() -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(command()).render(&mut out)?;
    Ok(out)
}

pub fn render_completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command(), "armadito-agent", &mut out);
    out
}

/// `--list-tasks` output.
pub fn list_tasks() -> String {
    let mut s = String::from("Supported tasks:\n");
    for t in TaskName::ALL {
        s.push_str(&format!("  {:<11} {}\n", t.as_str(), t.summary()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(normalize_legacy_args(args.iter().map(OsString::from)))
    }

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn old_agent_spellings() {
        let c = parse(&[
            "armadito-agent",
            "-t",
            "Getjobs",
            "-wr",
            "30",
            "-w",
            "2",
            "-av",
            "clamav",
            "-d",
        ])
        .unwrap();
        assert_eq!(c.task, Some(TaskName::Getjobs));
        assert_eq!(c.wait_rand, Some(30));
        assert_eq!(c.wait, Some(2));
        assert_eq!(c.options.backend.as_deref(), Some("clamav"));
        assert_eq!(c.options.debug, Some(1));
        let c = parse(&["armadito-agent", "--task", "AVConfig", "--debug", "2"]).unwrap();
        assert_eq!(
            (c.task, c.options.debug),
            (Some(TaskName::AVConfig), Some(2))
        );
    }

    #[test]
    fn task_names_are_exact() {
        for t in TaskName::ALL {
            assert_eq!(parse(&["a", "-t", t.as_str()]).unwrap().task, Some(t));
        }
        for bad in ["Nonsense", "GetJobs", "state"] {
            let e = parse(&["a", "-t", bad]).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains("invalid value"), "{e}");
        }
    }

    #[test]
    fn exit_codes_are_the_same_in_help_man_and_readme() {
        let help = command().render_long_help().to_string();
        let man = String::from_utf8(render_man().unwrap()).unwrap();
        let readme = include_str!("../../README.md");
        let table: Vec<(u8, String)> = readme
            .lines()
            .skip_while(|l| !l.starts_with("### Exit codes"))
            .skip(1)
            .take_while(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
                Some((cells.first()?.parse().ok()?, cells.get(1)?.replace('`', "")))
            })
            .collect();
        let ours: Vec<(u8, String)> = EXIT_CODES
            .iter()
            .map(|(c, m)| (*c, m.to_string()))
            .collect();
        assert_eq!(table, ours, "README's exit code table");
        // --help wraps long lines: compare with whitespace collapsed.
        let words = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
        let help = words(&help);
        for (code, meaning) in EXIT_CODES {
            assert!(
                help.contains(&words(&format!("{code} {meaning}"))),
                "--help lacks {code}: {help}"
            );
            // roff escapes '-' as '\-'
            let first = meaning.split(' ').next().unwrap().replace('-', "\\-");
            assert!(man.contains(&first), "man page lacks {code}: {first}");
        }
    }

    #[test]
    fn man_and_completions_render() {
        let man = String::from_utf8(render_man().unwrap()).unwrap();
        assert!(man.contains("armadito\\-agent") && man.contains("Exit codes"));
        let bash = String::from_utf8(render_completions(clap_complete::Shell::Bash)).unwrap();
        assert!(bash.contains("--get-agentid") && bash.contains("Enrollment"));
    }
}
