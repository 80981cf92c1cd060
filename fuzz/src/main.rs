//! Long mode: `cargo run --release -p armadito-fuzz -- --minutes 10 all` fuzzes every target
//! (or the ones named) and prints, per target, the inputs tried, the crashes and the time.
//! Exit code: 0 when no target crashed or hung, 1 otherwise (a hang aborts the process).

#[cfg(unix)]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(not(unix))]
fn main() {
    eprintln!("armadito-fuzz runs on Unix only");
    std::process::exit(2);
}

#[cfg(unix)]
mod cli {
    use std::path::PathBuf;
    use std::process::ExitCode;
    use std::time::Duration;

    use armadito_fuzz::engine::{Outcome, Settings, fuzz, run_once};
    use armadito_fuzz::targets::{Target, all, find};
    use clap::Parser;

    #[derive(Parser)]
    #[command(about = "Fuzz the parsers of outside data (see README, Fuzzing)")]
    struct Args {
        /// Targets to fuzz, or `all`.
        #[arg(default_value = "all")]
        targets: Vec<String>,
        /// Time per target, in minutes.
        #[arg(long, conflicts_with = "seconds")]
        minutes: Option<f64>,
        /// Time per target, in seconds (default 10).
        #[arg(long)]
        seconds: Option<f64>,
        /// Targets fuzzed at the same time (one thread each).
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Seed of the input sequence (the same seed replays the same inputs).
        #[arg(long)]
        seed: Option<u64>,
        /// Where failing inputs are written.
        #[arg(long, default_value = "target/fuzz-crashes")]
        crash_dir: PathBuf,
        /// List the targets and exit.
        #[arg(long)]
        list: bool,
        /// Run the (single) target on this file once, e.g. a saved crash.
        #[arg(long)]
        replay: Option<PathBuf>,
    }

    pub fn main() -> ExitCode {
        let args = Args::parse();
        if args.list {
            for t in all() {
                println!("{:<22} {}", t.name, t.about);
            }
            return ExitCode::SUCCESS;
        }
        let targets: Vec<Target> = if args.targets.iter().any(|t| t == "all") {
            all()
        } else {
            let mut v = Vec::new();
            for name in &args.targets {
                match find(name) {
                    Some(t) => v.push(t),
                    None => {
                        eprintln!("unknown target {name:?} (see --list)");
                        return ExitCode::from(2);
                    }
                }
            }
            v
        };
        if let Some(file) = &args.replay {
            let [t] = targets.as_slice() else {
                eprintln!("--replay needs exactly one target");
                return ExitCode::from(2);
            };
            let input = match std::fs::read(file) {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    return ExitCode::from(2);
                }
            };
            return match run_once(t, &input) {
                Ok(()) => {
                    println!("{}: no failure on {}", t.name, file.display());
                    ExitCode::SUCCESS
                }
                Err(m) => {
                    println!("{}: {m}", t.name);
                    ExitCode::FAILURE
                }
            };
        }
        let secs = args
            .minutes
            .map(|m| m * 60.0)
            .or(args.seconds)
            .unwrap_or(10.0);
        if !(secs.is_finite() && secs > 0.0) {
            eprintln!("the time per target must be a positive number");
            return ExitCode::from(2);
        }
        let mut settings = Settings::new(Duration::from_secs_f64(secs));
        if let Some(s) = args.seed {
            settings.seed = s;
        }
        settings.crash_dir = Some(args.crash_dir.clone());
        println!(
            "fuzzing {} target(s), {secs:.0} s each, {} at a time, seed {}",
            targets.len(),
            args.jobs.max(1),
            settings.seed
        );

        // A simple work queue: `jobs` threads take the next target until none is left.
        let queue = std::sync::Mutex::new(targets.into_iter());
        let results = std::sync::Mutex::new(Vec::<Outcome>::new());
        std::thread::scope(|s| {
            for _ in 0..args.jobs.max(1) {
                s.spawn(|| {
                    // The lock is released inside the closure, before the target runs.
                    let next = || queue.lock().ok().and_then(|mut q| q.next());
                    while let Some(t) = next() {
                        let o = fuzz(&t, &settings);
                        println!("{}", row(&o));
                        for c in &o.crashes {
                            println!("  CRASH {}: {}", o.target, c.message.replace('\n', " | "));
                            if let Some(p) = &c.saved {
                                println!("    input saved to {}", p.display());
                            }
                        }
                        if let Ok(mut r) = results.lock() {
                            r.push(o);
                        }
                    }
                });
            }
        });
        let mut results = results.into_inner().unwrap_or_default();
        results.sort_by_key(|o| o.target);
        println!();
        println!(
            "{:<22} {:>12} {:>8} {:>9} {:>8} {:>10} {:>12}",
            "target", "inputs", "crashes", "time (s)", "cpu (s)", "inputs/s", "slowest (ms)"
        );
        for o in &results {
            println!("{}", row(o));
        }
        let inputs: u64 = results.iter().map(|o| o.inputs).sum();
        let crashes: usize = results.iter().map(|o| o.crashes.len()).sum();
        println!("total: {inputs} inputs, {crashes} crashes");
        if crashes == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    fn row(o: &Outcome) -> String {
        let secs = o.elapsed.as_secs_f64();
        format!(
            "{:<22} {:>12} {:>8} {:>9.1} {:>8.1} {:>10.0} {:>12.1}",
            o.target,
            o.inputs,
            o.crashes.len(),
            secs,
            o.cpu.as_secs_f64(),
            o.inputs as f64 / secs.max(1e-9),
            o.slowest.as_secs_f64() * 1000.0
        )
    }
}
