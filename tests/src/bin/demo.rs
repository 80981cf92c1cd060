//! `cargo run -p armadito-tests --bin demo`: the agent's main job end to end, with no GLPI
//! install. Starts the GLPI plugin double on loopback with an enrollment key, then runs the real
//! `armadito-agent` binary through its tasks in a temporary directory — enroll, fetch a scan
//! job, run it with a backend plugin loaded from the plugins folder, deliver the results — and
//! prints what the server side recorded.

use armadito_tests::agent::{AgentSandbox, built_plugins};
use armadito_tests::double::Double;
use armadito_tests::fleet::make_tree;

const KEY: &str = "DEMO1-DEMO2-DEMO3-DEMO4-DEMO5";
const UUID: &str = "4C4C4544-0033-4A10-8051-DE3000000001";

fn main() {
    let double = Double::start();
    double.create_key(KEY, 10, 3600);
    println!("GLPI plugin double listening on {}", double.base_url());

    let mut sandbox = AgentSandbox::new(&double.base_url());
    sandbox.top_config = "backend = \"testav\"".into();
    sandbox.write_config(UUID);
    sandbox.install_plugins(&built_plugins(&["test-plugin-testav"]));
    let tree = make_tree(&sandbox.dir.path().join("home"), 20, 2);
    println!(
        "agent sandbox: {} (config: agent.toml, state: state/, plugins: plugins/)",
        sandbox.dir.path().display()
    );

    let mut failed = false;
    let mut step = |what: &str, args: &[&str]| {
        println!("\n$ armadito-agent {}    # {what}", args.join(" "));
        let r = sandbox.run(args);
        print!("{}", r.stdout);
        eprint!("{}", r.stderr);
        if r.code != Some(0) {
            println!("  -> exit code {:?}", r.code);
            failed = true;
        }
    };
    step(
        "list the backends found in the plugins folder",
        &["plugins"],
    );
    step("enroll with the key", &["-t", "Enrollment", "-k", KEY]);
    step("show the agent's status", &["status"]);

    // The GLPI admin creates a scan configuration and two jobs (a massive action in the UI).
    let agent = double.agents()[0].clone();
    let cfg = double.create_scanconfig(
        "demo home scan",
        tree.to_str().unwrap_or("/"),
        "-r",
        agent.plugin_armadito_antiviruses_id,
    );
    let low = double.create_job(agent.id, cfg, 0);
    let urgent = double.create_job(agent.id, cfg, 3);
    println!(
        "\n(GLPI admin queued scan jobs {low} (low) and {urgent} (urgent) for agent {})",
        agent.id
    );

    step("fetch the jobs into the durable queue", &["-t", "Getjobs"]);
    step("show the queue", &["queue"]);
    step(
        "run them, urgent first, and deliver the results",
        &["-t", "Runjobs"],
    );
    step("nothing left to deliver", &["outbox"]);

    println!("\nWhat the server recorded:");
    for a in double.agents() {
        println!(
            "  agent {} uuid {} version {} scheduler {}",
            a.id,
            a.uuid,
            a.agent_version.as_deref().unwrap_or("-"),
            a.plugin_armadito_schedulers_id
        );
    }
    for j in double.jobs() {
        println!(
            "  job {} priority {:<10} status {:<10} duration {}",
            j.id,
            j.job_priority,
            j.job_status,
            j.duration.as_deref().unwrap_or("-")
        );
    }
    for sc in double.scans() {
        println!(
            "  scan of job {}: {} files, {} malware, progress {}%",
            sc.plugin_armadito_jobs_id,
            sc.scanned_count.unwrap_or(-1),
            sc.malware_count.unwrap_or(-1),
            sc.progress.unwrap_or(-1)
        );
    }
    for al in double.alerts() {
        println!(
            "  alert: {} in {} (job {})",
            al.threat_name, al.filepath, al.plugin_armadito_jobs_id
        );
    }
    println!(
        "  {} requests, {} protocol violations",
        double.requests().len(),
        double.violations().len()
    );
    for v in double.violations() {
        println!("  violation: {v}");
    }
    if failed || !double.violations().is_empty() {
        std::process::exit(1);
    }
}
