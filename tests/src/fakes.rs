//! The fake antivirus tools of `tests/fakes` (see its README), copied into a private
//! temporary folder per test so each test has its own argv logs and scenarios.

use std::path::{Path, PathBuf};

/// A private copy of `tests/fakes`.
pub struct FakeTools {
    dir: tempfile::TempDir,
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create fake folder");
    for entry in std::fs::read_dir(from).expect("read tests/fakes") {
        let entry = entry.expect("fake entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            // fs::copy keeps the mode: the tool scripts stay executable
            std::fs::copy(entry.path(), &target).expect("copy fake file");
        }
    }
}

impl FakeTools {
    pub fn install() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        copy_tree(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("fakes"),
            dir.path(),
        );
        Self { dir }
    }

    /// A product root, e.g. `eset/eea`, `eset/esets`, `kaspersky/kesl`.
    pub fn root(&self, product: &str) -> PathBuf {
        self.dir.path().join(product)
    }

    /// Play `out/<tool>.<scenario>` from now on.
    pub fn scenario(&self, product: &str, tool: &str, scenario: &str) {
        let dir = self.root(product).join("scenario");
        std::fs::create_dir_all(&dir).expect("scenario dir");
        std::fs::write(dir.join(tool), format!("{scenario}\n")).expect("write scenario");
    }

    /// Record a new output `out/<tool>.<scenario>` (exit code `code`).
    pub fn output(&self, product: &str, tool: &str, scenario: &str, text: &str, code: i32) {
        let out = self.root(product).join("out");
        std::fs::write(out.join(format!("{tool}.{scenario}")), text).expect("write output");
        std::fs::write(
            out.join(format!("{tool}.{scenario}.code")),
            code.to_string(),
        )
        .expect("write code");
    }

    /// Every call so far, one `[argv0][argv1]...` line each.
    pub fn argv(&self, product: &str) -> Vec<String> {
        std::fs::read_to_string(self.root(product).join("argv.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// `[a][b][c]` for an expected call.
    pub fn line(args: &[&str]) -> String {
        args.iter().map(|a| format!("[{a}]")).collect()
    }
}
