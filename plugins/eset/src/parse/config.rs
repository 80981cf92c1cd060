//! Configuration as attr/value pairs: the ESSL settings XML (`cfg --export-xml`, format of
//! F-E7) and the legacy `esets.cfg` INI.

/// One setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub attr: String,
    pub value: String,
}

#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("the ESET settings XML cannot be read: {0}")]
    Parse(#[from] roxmltree::Error),
    /// Refused before parsing: the parser would overflow the stack (found by fuzzing).
    #[error("the ESET settings XML is nested deeper than {0} levels")]
    TooDeep(usize),
}

/// `<ESET><PRODUCT NAME="efs_unix"><ITEM NAME="Settings">…<NODE NAME="Port" TYPE="number"
/// VALUE="540"/>`: attr = the `ITEM` names joined with `:` plus the `NODE` name; `number`
/// values are hexadecimal in this format (`540` = 1344) and are given in decimal.
pub fn xml(text: &str) -> Result<Vec<Setting>, XmlError> {
    use armadito_cli_exec::xml::{MAX_DEPTH, nesting_depth};
    if nesting_depth(text) > MAX_DEPTH {
        return Err(XmlError::TooDeep(MAX_DEPTH));
    }
    let doc = roxmltree::Document::parse(text)?;
    let mut out = Vec::new();
    for node in doc.descendants().filter(|n| n.has_tag_name("NODE")) {
        let mut path: Vec<&str> = node
            .ancestors()
            .skip(1)
            .filter(|a| a.has_tag_name("ITEM"))
            .filter_map(|a| a.attribute("NAME"))
            .collect();
        path.reverse();
        let Some(name) = node.attribute("NAME") else {
            continue;
        };
        path.push(name);
        let raw = node.attribute("VALUE").unwrap_or_default();
        let value = match node.attribute("TYPE") {
            Some("number") => u64::from_str_radix(raw, 16)
                .map(|n| n.to_string())
                .unwrap_or_else(|_| raw.to_string()),
            _ => raw.to_string(),
        };
        out.push(Setting {
            attr: path.join(":"),
            value,
        });
    }
    Ok(out)
}

/// Legacy `esets.cfg`: `[section]` then `key = value`; `#` comments.
pub fn ini(text: &str) -> Vec<Setting> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.trim().to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            let key = k.trim();
            out.push(Setting {
                attr: if section.is_empty() {
                    key.to_string()
                } else {
                    format!("{section}:{key}")
                },
                value: v.trim().trim_matches('"').to_string(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// F-E7 verbatim, closed so it parses (the source file continues).
    const F_E7: &str = r#"<?xml version="1.0"?>
<ESET>
 <PRODUCT NAME="efs_unix">
  <ITEM NAME="Settings">
   <ITEM NAME="Plugins">
    <ITEM NAME="Icap">
     <ITEM NAME="EnableSocks">
      <NODE NAME="Enable" TYPE="number" VALUE="1" />
      <ITEM NAME="InetSocks" DELETE="1">
       <ITEM NAME="1">
        <NODE NAME="IpAddressOrHostname" TYPE="string" VALUE="0.0.0.0" />
        <NODE NAME="Port" TYPE="number" VALUE="540" />
       </ITEM>
      </ITEM>
     </ITEM>
    </ITEM>
   </ITEM>
  </ITEM>
 </PRODUCT>
</ESET>"#;

    #[test]
    fn essl_xml_numbers_are_hexadecimal() {
        let s = xml(F_E7).unwrap();
        assert_eq!(
            s,
            vec![
                Setting {
                    attr: "Settings:Plugins:Icap:EnableSocks:Enable".into(),
                    value: "1".into()
                },
                Setting {
                    attr: "Settings:Plugins:Icap:EnableSocks:InetSocks:1:IpAddressOrHostname"
                        .into(),
                    value: "0.0.0.0".into()
                },
                Setting {
                    attr: "Settings:Plugins:Icap:EnableSocks:InetSocks:1:Port".into(),
                    value: "1344".into()
                },
            ]
        );
        assert!(xml("<ESET><ITEM").is_err());
    }

    /// Fuzzing (eset_config) found a stack overflow in the XML parser on deep nesting: an
    /// error now, even on a small stack.
    #[test]
    fn deeply_nested_xml_is_an_error_not_a_crash() {
        let deep = "<ESET>\n <PRODUSET>".repeat(5000);
        let r = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || xml(&deep).map(|s| s.len()))
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert!(matches!(r, Err(XmlError::TooDeep(_))), "{r:?}");
    }

    #[test]
    fn legacy_ini() {
        // [R] shape of esets.cfg (pastebin in the doc); values invented
        let s = ini(
            "# comment\n[global]\nav_update_period = 60\n[esets_daemon]\nscan_on_access = \"yes\"\n",
        );
        assert_eq!(s[0].attr, "global:av_update_period");
        assert_eq!(s[1].value, "yes");
    }
}
