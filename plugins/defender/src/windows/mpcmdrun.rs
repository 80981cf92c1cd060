//! `MpCmdRun.exe -Scan -ScanType 3 -File <path> -DisableRemediation`: command line and output
//! (backends.md §D.5).
//!
//! Exit code 2 means "threats found" and also "failed": the verdict comes from the text only,
//! the `found no threats` / `found N threats` line first, then the `Threat :` blocks. Output
//! that has neither a verdict nor a known failure line is an error, never "clean".

use armadito_plugin_api::ScanKind;

/// The argv after `MpCmdRun.exe`. `path` is one argument (no shell, no quoting by us).
pub fn args(kind: ScanKind, path: Option<&str>, remediate: bool) -> Vec<String> {
    let mut a: Vec<String> = vec!["-Scan".into(), "-ScanType".into()];
    match (kind, path) {
        (ScanKind::Custom, Some(p)) => {
            a.extend(["3".into(), "-File".into(), p.to_string()]);
        }
        (ScanKind::Quick, _) => a.push("1".into()),
        (ScanKind::Full, _) | (ScanKind::Custom, None) => a.push("2".into()),
    }
    if !remediate {
        a.push("-DisableRemediation".into());
    }
    a
}

/// One threat block: its name and the files it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Threat {
    pub name: String,
    pub files: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    Infected { count: u64, threats: Vec<Threat> },
}

/// The verdict of one scan, or the failure text.
pub fn parse(stdout: &str) -> Result<Verdict, String> {
    let mut found: Option<u64> = None;
    let mut threats: Vec<Threat> = Vec::new();
    let mut failure: Option<String> = None;
    for line in stdout.lines().map(str::trim) {
        if let Some(i) = line.rfind("found ") {
            let rest = &line[i + 6..];
            if rest.starts_with("no threats") {
                found = Some(0);
            } else if let Some(n) = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|_| rest.contains("threat"))
            {
                found = Some(n);
            }
        } else if line.contains("Failed with hr") || line.starts_with("CmdTool: Failed") {
            failure.get_or_insert_with(|| line.to_string());
        } else if let Some((key, value)) = line.split_once(" : ").or_else(|| line.split_once(": "))
        {
            let (key, value) = (key.trim(), value.trim());
            match key {
                "Threat" => threats.push(Threat {
                    name: value.to_string(),
                    files: Vec::new(),
                }),
                "file" | "containerfile" => {
                    if let Some(t) = threats.last_mut() {
                        t.files.push(value.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    match (found, failure) {
        (_, Some(f)) if threats.is_empty() => Err(f),
        (Some(0), _) if threats.is_empty() => Ok(Verdict::Clean),
        (Some(n), _) => Ok(Verdict::Infected {
            count: n.max(threats.len() as u64),
            threats,
        }),
        (None, _) if !threats.is_empty() => Ok(Verdict::Infected {
            count: threats.len() as u64,
            threats,
        }),
        _ => Err(format!(
            "no scan verdict in MpCmdRun's output: {}",
            super::powershell::excerpt(stdout.trim())
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        assert_eq!(
            args(ScanKind::Custom, Some(r"C:\a b\c"), false),
            [
                "-Scan",
                "-ScanType",
                "3",
                "-File",
                r"C:\a b\c",
                "-DisableRemediation"
            ]
        );
        assert_eq!(
            args(ScanKind::Quick, None, true),
            ["-Scan", "-ScanType", "1"]
        );
    }

    #[test]
    fn clean_infected_failed_and_unknown() {
        let clean = "Scan starting...\nScan finished.\nScanning C:\\p\\f found no threats.\n";
        assert_eq!(parse(clean), Ok(Verdict::Clean));
        let infected = "Scan starting...\r\nScan finished.\r\nScanning C:\\test found 2 threats.\r\n\r\n\
<===========================LIST OF DETECTED THREATS==========================>\r\n\
----------------------------- Threat information ------------------------------\r\n\
Threat                  : Virus:DOS/EICAR_Test_File\r\n\
Resources               : 2 total\r\n\
    file                : C:\\test\\eicar.com\r\n\
    file                : C:\\test\\sub\\eicar2.com\r\n\
-------------------------------------------------------------------------------\r\n";
        assert_eq!(
            parse(infected),
            Ok(Verdict::Infected {
                count: 2,
                threats: vec![Threat {
                    name: "Virus:DOS/EICAR_Test_File".into(),
                    files: vec![
                        "C:\\test\\eicar.com".into(),
                        "C:\\test\\sub\\eicar2.com".into()
                    ],
                }]
            })
        );
        let failed = "Scan starting...\nCmdTool: Failed with hr = 0x80508023. Check C:\\Users\\x\\MpCmdRun.log for more information\n";
        assert!(parse(failed).unwrap_err().contains("0x80508023"));
        assert!(parse("").unwrap_err().contains("no scan verdict"));
        assert!(parse("Scan starting...\nScan finished.\n").is_err());
    }
}
