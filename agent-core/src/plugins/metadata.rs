//! A plugin file's static metadata (see `armadito_plugin_api::static_meta`), read with an
//! object-file parser: no `dlopen`, no plugin code, only the headers and one section are read.
//!
//! Invariants:
//! * `Ok(None)` means "no metadata section" (a plugin built before it existed, or a file the
//!   parser does not understand): the caller falls back to loading it, whose error message
//!   (the dynamic loader's) is the one users know. A section that does not decode is an error.
//! * What is read here only *selects* a file; the loader checks the same name again in the
//!   copy it loads, so a file changed in between is refused, not mistaken for another.

use std::fs::File;
use std::path::Path;

use armadito_plugin_api::model::PluginMetadata;
use armadito_plugin_api::static_meta::{SECTION, find_json};
use object::read::elf::{FileHeader, SectionHeader};
use object::{FileKind, Object, ObjectSection, ReadCache, ReadRef, elf};

/// What the metadata section says, and whether it lists capabilities.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StaticMetadata {
    pub metadata: PluginMetadata,
    /// `false` when the plugin did not declare its capabilities as a constant.
    pub has_capabilities: bool,
}

/// Read the metadata section of the library at `path`.
pub(crate) fn read(path: &Path) -> Result<Option<StaticMetadata>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    // Reads only the byte ranges asked for: headers, section table, names, one section.
    let cache = ReadCache::new(file);
    let name = SECTION.rsplit(',').next().unwrap_or(SECTION);
    let data = match FileKind::parse(&cache) {
        Ok(FileKind::Elf64) => {
            elf_section::<elf::FileHeader64<object::Endianness>, _>(&cache, name)
        }
        Ok(FileKind::Elf32) => {
            elf_section::<elf::FileHeader32<object::Endianness>, _>(&cache, name)
        }
        Ok(_) => object::File::parse(&cache).ok().and_then(|o| {
            o.section_by_name(name)
                .map(|s| s.data().map_err(|e| e.to_string()))
        }),
        Err(_) => None,
    };
    match data {
        None => Ok(None),
        Some(Ok(bytes)) => decode(bytes).map(Some),
        Some(Err(e)) => Err(format!("cannot read the metadata section: {e}")),
    }
}

/// An ELF section's bytes, without parsing symbols and relocations (which `object::File`
/// does eagerly: megabytes for a plugin built with its symbols).
fn elf_section<'data, Elf: FileHeader<Endian = object::Endianness>, R: ReadRef<'data>>(
    data: R,
    name: &str,
) -> Option<Result<&'data [u8], String>> {
    let header = Elf::parse(data).ok()?;
    let endian = header.endian().ok()?;
    let sections = header.sections(endian, data).ok()?;
    let (_, section) = sections.section_by_name(endian, name.as_bytes())?;
    Some(section.data(endian, data).map_err(|e| e.to_string()))
}

/// Decode the bytes of a metadata section.
pub(crate) fn decode(data: &[u8]) -> Result<StaticMetadata, String> {
    let json = find_json(data).ok_or("metadata section without metadata")?;
    let value: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("bad metadata section: {e}"))?;
    let has_capabilities = value.get("capabilities").is_some();
    let metadata: PluginMetadata =
        serde_json::from_value(value).map_err(|e| format!("bad metadata section: {e}"))?;
    Ok(StaticMetadata {
        metadata,
        has_capabilities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use armadito_plugin_api::static_meta::MAGIC;

    #[test]
    fn decodes_and_flags_missing_capabilities() {
        let mut data = MAGIC.to_vec();
        data.extend_from_slice(br#"{"name":"x","version":"1.0.0","interface_version":"1.0.0"}"#);
        data.push(0);
        let m = decode(&data).unwrap();
        assert_eq!(m.metadata.name, "x");
        assert!(!m.has_capabilities);
        assert!(decode(b"garbage").is_err());
    }

    #[test]
    fn files_without_a_section_have_none() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.so");
        std::fs::write(&junk, b"not an ELF file at all").unwrap();
        assert_eq!(read(&junk).unwrap(), None);
        assert!(read(&dir.path().join("absent.so")).is_err());
        // This test executable is a valid object file without a metadata section.
        let me = std::env::current_exe().unwrap();
        assert_eq!(read(&me).unwrap(), None);
    }
}
