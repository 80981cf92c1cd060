//! Plugin loader (filled by the plugin issue).
