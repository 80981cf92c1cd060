//! clamav backend plugin (filled in by its issue).
