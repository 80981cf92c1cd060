//! The clamd.conf option table: name, argument kind, and whether the option may repeat.
//!
//! Invariants:
//! * Derived from clamconf 1.4 by probing every option of `clamconf -g clamd.conf` with
//!   `yes`, `10M`, `10` and `abc` (a bool accepts only the first, a size the 2nd and 3rd, a
//!   number only the 3rd, a string all four); the repeatable set is the `FLAG_MULTIPLE`
//!   options of clamd. `BytecodeMode`/`BytecodeSecurity` take enumerated words (strings).
//! * Options absent from the table are still read and reported (as strings), but
//!   `config_set` refuses to write them: clamd refuses to start on an unknown option.

/// Argument type of a clamd option (`man 5 clamd.conf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// yes/no, true/false, 1/0
    Bool,
    /// bytes, with an optional K/M/G suffix (powers of 1024)
    Size,
    /// a non-negative integer
    Number,
    /// anything else, to the end of the line
    Str,
}

/// The only options a remote `config_set` may change: resource limits, timeouts and
/// scan-type/detection switches, whose worst value costs performance or detection depth but
/// cannot run code, block the host (`OnAccessPrevention`, `OnAccessDenyOnError`), hide files
/// from scanning (`ExcludePath`), relax trust (`BytecodeUnsigned`), leak data
/// (`LeaveTemporaryFiles`, `Debug`), move sockets or files, or change clamd's identity.
/// Everything else is read and reported but "not changeable remotely". Sorted.
pub const REMOTE_TUNABLE: &[&str] = &[
    "AlertBrokenExecutables",
    "AlertBrokenMedia",
    "AlertEncrypted",
    "AlertEncryptedArchive",
    "AlertEncryptedDoc",
    "AlertExceedsMax",
    "AlertOLE2Macros",
    "AlertPartitionIntersection",
    "AlertPhishingCloak",
    "AlertPhishingSSLMismatch",
    "BytecodeTimeout",
    "CacheSize",
    "CommandReadTimeout",
    "DetectPUA",
    "HeuristicAlerts",
    "HeuristicScanPrecedence",
    "IdleTimeout",
    "MaxConnectionQueueLength",
    "MaxDirectoryRecursion",
    "MaxEmbeddedPE",
    "MaxFileSize",
    "MaxFiles",
    "MaxHTMLNoTags",
    "MaxHTMLNormalize",
    "MaxIconsPE",
    "MaxPartitions",
    "MaxQueue",
    "MaxRecHWP3",
    "MaxRecursion",
    "MaxScanSize",
    "MaxScanTime",
    "MaxScriptNormalize",
    "MaxThreads",
    "MaxZipTypeRcg",
    "PCREMatchLimit",
    "PCREMaxFileSize",
    "PCRERecMatchLimit",
    "PhishingScanURLs",
    "PhishingSignatures",
    "ReadTimeout",
    "ScanArchive",
    "ScanELF",
    "ScanHTML",
    "ScanHWP3",
    "ScanImage",
    "ScanImageFuzzyHash",
    "ScanMail",
    "ScanOLE2",
    "ScanOneNote",
    "ScanPDF",
    "ScanPE",
    "ScanPartialMessages",
    "ScanSWF",
    "ScanXMLDOCS",
    "SendBufTimeout",
    "StreamMaxLength",
];

/// Whether a remote `config_set` may change `name` ([`REMOTE_TUNABLE`]).
pub fn is_remotely_tunable(name: &str) -> bool {
    REMOTE_TUNABLE.binary_search(&name).is_ok()
}

/// `(kind, repeatable)` of a known option.
pub fn lookup(name: &str) -> Option<(Kind, bool)> {
    OPTIONS
        .binary_search_by(|(n, _, _)| (*n).cmp(name))
        .ok()
        .map(|i| (OPTIONS[i].1, OPTIONS[i].2))
}

/// Sorted by name (binary search).
const OPTIONS: &[(&str, Kind, bool)] = &[
    ("AlertBrokenExecutables", Kind::Bool, false),
    ("AlertBrokenMedia", Kind::Bool, false),
    ("AlertEncrypted", Kind::Bool, false),
    ("AlertEncryptedArchive", Kind::Bool, false),
    ("AlertEncryptedDoc", Kind::Bool, false),
    ("AlertExceedsMax", Kind::Bool, false),
    ("AlertOLE2Macros", Kind::Bool, false),
    ("AlertPartitionIntersection", Kind::Bool, false),
    ("AlertPhishingCloak", Kind::Bool, false),
    ("AlertPhishingSSLMismatch", Kind::Bool, false),
    ("AlgorithmicDetection", Kind::Bool, false),
    ("AllowAllMatchScan", Kind::Bool, false),
    ("ArchiveBlockEncrypted", Kind::Bool, false),
    ("BlockMax", Kind::Bool, false),
    ("Bytecode", Kind::Bool, false),
    ("BytecodeMode", Kind::Str, false),
    ("BytecodeSecurity", Kind::Str, false),
    ("BytecodeTimeout", Kind::Number, false),
    ("BytecodeUnsigned", Kind::Bool, false),
    ("CacheSize", Kind::Number, false),
    ("CommandReadTimeout", Kind::Number, false),
    ("ConcurrentDatabaseReload", Kind::Bool, false),
    ("CrossFilesystems", Kind::Bool, false),
    ("DatabaseDirectory", Kind::Str, false),
    ("Debug", Kind::Bool, false),
    ("DetectPUA", Kind::Bool, false),
    ("DisableCache", Kind::Bool, false),
    ("DisableCertCheck", Kind::Bool, false),
    ("ExcludePUA", Kind::Str, true),
    ("ExcludePath", Kind::Str, true),
    ("ExitOnOOM", Kind::Bool, false),
    ("ExtendedDetectionInfo", Kind::Bool, false),
    ("FailIfCvdOlderThan", Kind::Number, false),
    ("FixStaleSocket", Kind::Bool, false),
    ("FollowDirectorySymlinks", Kind::Bool, false),
    ("FollowFileSymlinks", Kind::Bool, false),
    ("ForceToDisk", Kind::Bool, false),
    ("Foreground", Kind::Bool, false),
    ("GenerateMetadataJson", Kind::Bool, false),
    ("HeuristicAlerts", Kind::Bool, false),
    ("HeuristicScanPrecedence", Kind::Bool, false),
    ("IdleTimeout", Kind::Number, false),
    ("IncludePUA", Kind::Str, true),
    ("LeaveTemporaryFiles", Kind::Bool, false),
    ("LocalSocket", Kind::Str, false),
    ("LocalSocketGroup", Kind::Str, false),
    ("LocalSocketMode", Kind::Str, false),
    ("LogClean", Kind::Bool, false),
    ("LogFacility", Kind::Str, false),
    ("LogFile", Kind::Str, false),
    ("LogFileMaxSize", Kind::Size, false),
    ("LogFileUnlock", Kind::Bool, false),
    ("LogRotate", Kind::Bool, false),
    ("LogSyslog", Kind::Bool, false),
    ("LogTime", Kind::Bool, false),
    ("LogVerbose", Kind::Bool, false),
    ("MaxConnectionQueueLength", Kind::Number, false),
    ("MaxDirectoryRecursion", Kind::Number, false),
    ("MaxEmbeddedPE", Kind::Size, false),
    ("MaxFileSize", Kind::Size, false),
    ("MaxFiles", Kind::Number, false),
    ("MaxHTMLNoTags", Kind::Size, false),
    ("MaxHTMLNormalize", Kind::Size, false),
    ("MaxIconsPE", Kind::Number, false),
    ("MaxPartitions", Kind::Number, false),
    ("MaxQueue", Kind::Number, false),
    ("MaxRecHWP3", Kind::Number, false),
    ("MaxRecursion", Kind::Number, false),
    ("MaxScanSize", Kind::Size, false),
    ("MaxScanTime", Kind::Number, false),
    ("MaxScriptNormalize", Kind::Size, false),
    ("MaxThreads", Kind::Number, false),
    ("MaxZipTypeRcg", Kind::Size, false),
    ("OLE2BlockMacros", Kind::Bool, false),
    ("OfficialDatabaseOnly", Kind::Bool, false),
    ("OnAccessCurlTimeout", Kind::Number, false),
    ("OnAccessDenyOnError", Kind::Bool, false),
    ("OnAccessDisableDDD", Kind::Bool, false),
    ("OnAccessExcludePath", Kind::Str, true),
    ("OnAccessExcludeRootUID", Kind::Bool, false),
    ("OnAccessExcludeUID", Kind::Number, true),
    ("OnAccessExcludeUname", Kind::Str, true),
    ("OnAccessExtraScanning", Kind::Bool, false),
    ("OnAccessIncludePath", Kind::Str, true),
    ("OnAccessMaxFileSize", Kind::Size, false),
    ("OnAccessMaxThreads", Kind::Number, false),
    ("OnAccessMountPath", Kind::Str, true),
    ("OnAccessPrevention", Kind::Bool, false),
    ("OnAccessRetryAttempts", Kind::Number, false),
    ("PCREMatchLimit", Kind::Number, false),
    ("PCREMaxFileSize", Kind::Size, false),
    ("PCRERecMatchLimit", Kind::Number, false),
    ("PartitionIntersection", Kind::Bool, false),
    ("PhishingAlwaysBlockCloak", Kind::Bool, false),
    ("PhishingAlwaysBlockSSLMismatch", Kind::Bool, false),
    ("PhishingScanURLs", Kind::Bool, false),
    ("PhishingSignatures", Kind::Bool, false),
    ("PidFile", Kind::Str, false),
    ("PreludeAnalyzerName", Kind::Str, false),
    ("PreludeEnable", Kind::Bool, false),
    ("ReadTimeout", Kind::Number, false),
    ("ScanArchive", Kind::Bool, false),
    ("ScanELF", Kind::Bool, false),
    ("ScanHTML", Kind::Bool, false),
    ("ScanHWP3", Kind::Bool, false),
    ("ScanImage", Kind::Bool, false),
    ("ScanImageFuzzyHash", Kind::Bool, false),
    ("ScanMail", Kind::Bool, false),
    ("ScanOLE2", Kind::Bool, false),
    ("ScanOneNote", Kind::Bool, false),
    ("ScanPDF", Kind::Bool, false),
    ("ScanPE", Kind::Bool, false),
    ("ScanPartialMessages", Kind::Bool, false),
    ("ScanSWF", Kind::Bool, false),
    ("ScanXMLDOCS", Kind::Bool, false),
    ("SelfCheck", Kind::Number, false),
    ("SendBufTimeout", Kind::Number, false),
    ("StreamMaxLength", Kind::Size, false),
    ("StreamMaxPort", Kind::Number, false),
    ("StreamMinPort", Kind::Number, false),
    ("StructuredCCOnly", Kind::Bool, false),
    ("StructuredDataDetection", Kind::Bool, false),
    ("StructuredMinCreditCardCount", Kind::Number, false),
    ("StructuredMinSSNCount", Kind::Number, false),
    ("StructuredSSNFormatNormal", Kind::Bool, false),
    ("StructuredSSNFormatStripped", Kind::Bool, false),
    ("TCPAddr", Kind::Str, true),
    ("TCPSocket", Kind::Number, false),
    ("TemporaryDirectory", Kind::Str, false),
    ("User", Kind::Str, false),
    ("VirusEvent", Kind::Str, false),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_typed() {
        assert!(
            OPTIONS.windows(2).all(|w| w[0].0 < w[1].0),
            "OPTIONS must stay sorted"
        );
        assert_eq!(lookup("LogTime"), Some((Kind::Bool, false)));
        assert_eq!(lookup("StreamMaxLength"), Some((Kind::Size, false)));
        assert_eq!(lookup("MaxThreads"), Some((Kind::Number, false)));
        assert_eq!(lookup("OnAccessIncludePath"), Some((Kind::Str, true)));
        assert_eq!(lookup("TCPAddr"), Some((Kind::Str, true)));
        assert_eq!(lookup("Bogus"), None);
        assert!(
            REMOTE_TUNABLE.windows(2).all(|w| w[0] < w[1]),
            "REMOTE_TUNABLE must stay sorted"
        );
        assert!(
            REMOTE_TUNABLE.iter().all(|p| lookup(p).is_some()),
            "tunable names exist"
        );
        for dangerous in [
            "OnAccessPrevention",
            "OnAccessDenyOnError",
            "OnAccessMountPath",
            "OnAccessIncludePath",
            "OnAccessExcludePath",
            "ExcludePath",
            "BytecodeUnsigned",
            "LeaveTemporaryFiles",
            "Debug",
            "VirusEvent",
            "User",
            "LocalSocket",
            "TCPSocket",
            "TCPAddr",
            "LogFile",
            "DatabaseDirectory",
            "TemporaryDirectory",
            "FollowDirectorySymlinks",
            "ExtendedDetectionInfo",
        ] {
            assert!(!is_remotely_tunable(dangerous), "{dangerous}");
        }
    }
}
