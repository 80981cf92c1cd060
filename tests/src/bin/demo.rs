//! `cargo run -p armadito-tests --bin demo`: the agent's main job end to end, with no GLPI
//! install. Starts the GLPI plugin double on loopback with an enrollment key, then runs the real
//! `armadito-agent` binary through its tasks in a temporary directory, and prints what the
//! server side recorded.

use armadito_tests::agent::AgentSandbox;
use armadito_tests::double::Double;

const KEY: &str = "DEMO1-DEMO2-DEMO3-DEMO4-DEMO5";
const UUID: &str = "4C4C4544-0033-4A10-8051-DE3000000001";

fn main() {
    let double = Double::start();
    double.create_key(KEY, 10, 3600);
    println!("GLPI plugin double listening on {}", double.base_url());

    let sandbox = AgentSandbox::new(&double.base_url());
    sandbox.write_config(UUID);
    println!("agent sandbox: {}", sandbox.dir.path().display());

    let steps: &[(&str, &[&str])] = &[
        ("enroll with the key", &["-t", "Enrollment", "-k", KEY]),
        ("show the stored agent id", &["--get-agentid"]),
        ("show the agent status", &["status"]),
    ];
    let mut failed = false;
    for (what, args) in steps {
        println!("\n$ armadito-agent {}    # {what}", args.join(" "));
        let r = sandbox.run(args);
        print!("{}", r.stdout);
        eprint!("{}", r.stderr);
        if r.code != Some(0) {
            println!("  -> exit code {:?}", r.code);
            failed = true;
        }
    }

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
    println!(
        "  key {KEY}: {} uses left",
        double.key_use_counter(KEY).unwrap_or(0)
    );
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
